"""Unpublish and publish again: the subscriber gets the new track each time."""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader, subscribed_tracks

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
async def test_republish_three_times(server: Server, sdk_rooms: Connect, single_pc: bool) -> None:
    bob = await sdk_rooms("bob", options=rtc.RoomOptions(single_peer_connection=single_pc))
    tracks = subscribed_tracks(bob)
    alice = await sdk_rooms("alice", options=rtc.RoomOptions(single_peer_connection=single_pc))
    for round_index in range(3):
        publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
        reader: CounterReader | None = None
        try:
            publication = await publisher.start(name=f"camera-{round_index}")
            track = await asyncio.wait_for(tracks.get(), 15)
            assert track.sid == publication.sid
            reader = CounterReader(track)
            await asyncio.wait_for(reader.first_frame.wait(), 15)
            await asyncio.sleep(0.5)
            assert len(reader.counters) >= 5, f"round {round_index}: {len(reader.counters)} frames"
            await alice.local_participant.unpublish_track(publication.sid)
        finally:
            await publisher.stop()
            if reader is not None:
                await reader.close()
