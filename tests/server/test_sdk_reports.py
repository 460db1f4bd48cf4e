"""RTCP reports: publishers get receiver reports, subscribers get sender reports."""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader, subscribed_tracks

pytestmark = pytest.mark.timeout(60)


async def test_sender_and_receiver_reports(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    tracks = subscribed_tracks(bob)
    alice = await sdk_rooms("alice")
    publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
    reader: CounterReader | None = None
    try:
        await publisher.start()
        reader = CounterReader(await asyncio.wait_for(tracks.get(), 15))
        rtt_measurements = 0
        sender_reports = 0
        for _ in range(20):
            await asyncio.sleep(0.5)
            alice_stats = await alice.get_rtc_stats()
            bob_stats = await bob.get_rtc_stats()
            rtt_measurements = sum(
                s.remote_inbound_rtp.remote_inbound.round_trip_time_measurements
                for s in alice_stats.publisher_stats
                if s.WhichOneof("stats") == "remote_inbound_rtp"
            )
            # bob joined through /rtc/v1: one PeerConnection, reported as the publisher one.
            sender_reports = sum(
                s.remote_outbound_rtp.remote_outbound.reports_sent
                for s in list(bob_stats.publisher_stats) + list(bob_stats.subscriber_stats)
                if s.WhichOneof("stats") == "remote_outbound_rtp"
            )
            if rtt_measurements >= 2 and sender_reports >= 2:
                break
        assert rtt_measurements >= 2, "the publisher got no receiver reports from the server"
        assert sender_reports >= 2, "the subscriber got no sender reports from the server"
    finally:
        await publisher.stop()
        if reader is not None:
            await reader.close()
