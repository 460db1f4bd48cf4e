"""Subscribing to one track again and again over one PeerConnection (/rtc/v1) with the official SDK.

Every unsubscription stops the m-line the track went out on; the SDK must
report each new subscription as a track that plays.
"""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader

pytestmark = pytest.mark.timeout(120)

_CYCLES = 6


def _media_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("m=")]


async def test_every_resubscription_plays_on_a_fresh_m_line(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob", options=rtc.RoomOptions(auto_subscribe=False, single_peer_connection=True))
    published: asyncio.Queue[rtc.RemoteTrackPublication] = asyncio.Queue()
    subscribed: asyncio.Queue[rtc.Track] = asyncio.Queue()
    bob.on("track_published", lambda publication, participant: published.put_nowait(publication))
    bob.on("track_subscribed", lambda track, publication, participant: subscribed.put_nowait(track))
    alice = await sdk_rooms("alice")
    publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
    try:
        await publisher.start()
        publication = await asyncio.wait_for(published.get(), 15)
        bob_server = server.rooms.rooms["room"].participants["bob"]
        used_mids: list[str] = []
        line_counts: list[int] = []
        for cycle in range(_CYCLES):
            publication.set_subscribed(True)
            track = await asyncio.wait_for(subscribed.get(), 15)
            reader = CounterReader(track)
            try:
                await asyncio.wait_for(reader.first_frame.wait(), 10)
            finally:
                await reader.close()
            down = bob_server.subscriptions[publication.sid]
            assert down.transceiver is not None and down.transceiver.mid is not None
            used_mids.append(down.transceiver.mid)
            publication.set_subscribed(False)
            for _ in range(200):
                if publication.sid not in bob_server.subscriptions:
                    break
                await asyncio.sleep(0.05)
            assert publication.sid not in bob_server.subscriptions, f"cycle {cycle}: unsubscription not seen"
            assert down.transceiver.stopped
            assert bob_server.publisher_pc is not None
            line_counts.append(len(_media_lines(bob_server.publisher_pc.remote_description or "")))
        assert len(set(used_mids)) == _CYCLES, f"an m-line was handed out twice: {used_mids}"
        print(f"\nm-lines in the client's offer after each of {_CYCLES} unsubscriptions: {line_counts}")
    finally:
        await publisher.stop()
