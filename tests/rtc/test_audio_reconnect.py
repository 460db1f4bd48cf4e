"""Audio across a full reconnect: a publisher whose signal connection drops republishes its audio
track from the same AudioSource; a listener that reconnects keeps its stream on the same track."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from audio_peers import RoomFactory, subscribed_audio
from kitewire import rtc
from kitewire.server import Server
from test_audio_stream_contract import publish, tone
from test_reconnect import RoomEvents, cut_signal

pytestmark = pytest.mark.timeout(90)


async def _loud_frames(stream: rtc.AudioStream, count: int, timeout: float) -> int:
    """Frames with the tone in them, until ``count`` of them or ``timeout``."""
    loud = 0

    async def read() -> None:
        nonlocal loud
        async for event in stream:
            if int(np.abs(event.frame.to_ndarray().astype(np.int32)).max()) > 3000:
                loud += 1
                if loud >= count:
                    return

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        pass
    return loud


async def test_publisher_reconnect_republishes_audio_from_the_same_source(
    connect_room: RoomFactory, server: Server, room_name: str
) -> None:
    listener = await connect_room("ear")
    tracks: asyncio.Queue[rtc.RemoteAudioTrack] = asyncio.Queue()
    listener.on(
        "track_subscribed", lambda t, pub, p: tracks.put_nowait(t) if isinstance(t, rtc.RemoteAudioTrack) else None
    )
    speaker = await connect_room("voice")
    events = RoomEvents(speaker)
    source, publication = await publish(speaker)
    async with tone(source):
        first = rtc.AudioStream(await asyncio.wait_for(tracks.get(), 15))
        assert await _loud_frames(first, 20, 15) >= 20
        old_sid = publication.sid
        await cut_signal(server, room_name, "voice")
        await asyncio.wait_for(events.reconnected.wait(), 20)
        assert publication.sid != old_sid and publication.kind == rtc.TrackKind.KIND_AUDIO
        # the listener saw the speaker rejoin (a new participant to the server) with a new track
        second = await asyncio.wait_for(tracks.get(), 20)
        assert second.sid == publication.sid
        stream = rtc.AudioStream(second)
        assert await _loud_frames(stream, 50, 20) >= 50
        await stream.aclose()
        await first.aclose()


async def test_listener_reconnect_keeps_its_stream_on_the_same_track(
    connect_room: RoomFactory, server: Server, room_name: str
) -> None:
    listener = await connect_room("ear2")
    events = RoomEvents(listener)
    speaker = await connect_room("voice2")
    source, _ = await publish(speaker)
    async with tone(source):
        remote = await subscribed_audio(listener)
        stream = rtc.AudioStream(remote)
        assert await _loud_frames(stream, 20, 15) >= 20
        await cut_signal(server, room_name, "ear2")
        await asyncio.wait_for(events.reconnected.wait(), 20)
        assert await _loud_frames(stream, 50, 20) >= 50
        await stream.aclose()
