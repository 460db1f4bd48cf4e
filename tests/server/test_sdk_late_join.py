"""A subscriber joining a running stream gets video promptly (the server asks for a keyframe)."""

from __future__ import annotations

import asyncio
import time

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
async def test_late_joiner_receives_video(server: Server, sdk_rooms: Connect, single_pc: bool) -> None:
    alice = await sdk_rooms("alice")
    # Keyframes only every few seconds unless someone asks: a late joiner depends on PLI.
    publisher = CounterPublisher(alice, 640, 480, simulcast=True, codec=rtc.VideoCodec.VP8)
    reader: CounterReader | None = None
    try:
        await publisher.start()
        await asyncio.sleep(2.0)
        tracks: asyncio.Queue[rtc.Track] = asyncio.Queue()
        started = time.monotonic()
        bob = await sdk_rooms("bob", options=rtc.RoomOptions(single_peer_connection=single_pc))
        bob.on("track_subscribed", lambda track, publication, participant: tracks.put_nowait(track))
        for participant in bob.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    tracks.put_nowait(publication.track)
        reader = CounterReader(await asyncio.wait_for(tracks.get(), 10))
        await asyncio.wait_for(reader.first_frame.wait(), 10)
        assert time.monotonic() - started < 5
        await asyncio.sleep(1.0)
        assert len(reader.counters) >= 20
        assert reader.counters == sorted(reader.counters)
    finally:
        await publisher.stop()
        if reader is not None:
            await reader.close()
