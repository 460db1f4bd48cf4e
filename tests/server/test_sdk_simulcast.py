"""Simulcast layer selection, seen from official-SDK subscribers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader

pytestmark = pytest.mark.timeout(120)


async def _subscriber(
    connect: Connect, identity: str, quality: int, *, single_pc: bool
) -> tuple[rtc.Room, asyncio.Future[tuple[rtc.Track, rtc.RemoteTrackPublication]]]:
    room = await connect(identity, options=rtc.RoomOptions(single_peer_connection=single_pc))
    future: asyncio.Future[tuple[rtc.Track, rtc.RemoteTrackPublication]] = asyncio.get_running_loop().create_future()

    def on_subscribed(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        publication.set_video_quality(quality)  # type: ignore[arg-type]
        if not future.done():
            future.set_result((track, publication))

    room.on("track_subscribed", on_subscribed)
    return room, future


async def _wait_for_width(reader: CounterReader, accept: Callable[[int], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = reader.sizes[-10:]
        if len(recent) == 10 and all(accept(w) for w, _ in recent):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"last sizes {reader.sizes[-10:]} (of {len(reader.sizes)} frames)")


async def test_720p_low_and_high_subscribers(server: Server, sdk_rooms: Connect) -> None:
    # One subscriber per PeerConnection mode: /rtc/v1 (single PC) and /rtc (two PCs).
    _, low_future = await _subscriber(sdk_rooms, "low", rtc.VideoQuality.VIDEO_QUALITY_LOW, single_pc=True)
    _, high_future = await _subscriber(sdk_rooms, "high", rtc.VideoQuality.VIDEO_QUALITY_HIGH, single_pc=False)
    alice = await sdk_rooms("alice")
    publisher = CounterPublisher(alice, 1280, 720, simulcast=True, codec=rtc.VideoCodec.VP8, max_bitrate=2_500_000)
    readers: list[CounterReader] = []
    try:
        await publisher.start()
        low_track, _ = await asyncio.wait_for(low_future, 15)
        high_track, high_publication = await asyncio.wait_for(high_future, 15)
        low, high = CounterReader(low_track), CounterReader(high_track)
        readers += [low, high]
        await _wait_for_width(low, lambda w: w <= 400, 25)
        await _wait_for_width(high, lambda w: w == 1280, 40)
        assert low.counters[-5:] == sorted(low.counters[-5:])
        # A running subscriber switches down at a keyframe; the stream goes on seamlessly.
        before = len(high.counters)
        high_publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
        await _wait_for_width(high, lambda w: w <= 400, 25)
        across = high.counters[max(0, before - 5) :]
        # The new layer's keyframe may carry the same captured frame as the old layer's last one.
        assert all(b >= a for a, b in zip(across, across[1:])), f"counters went back across the switch: {across}"
        assert 1280 in {w for w, _ in high.sizes} and 320 in {w for w, _ in high.sizes}
    finally:
        await publisher.stop()
        for reader in readers:
            await reader.close()
