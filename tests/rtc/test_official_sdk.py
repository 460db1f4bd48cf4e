"""Crossover with the official livekit SDK (libwebrtc) through the kitewire server:
official publisher -> kitewire VideoStream, and kitewire publisher -> official VideoStream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server
from livekit import rtc as lk

from capture_loop import capturing
from futures import resolve_once

WIDTH, HEIGHT = 640, 360


def token_for(identity: str, room: str) -> str:
    from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)


def first_subscription(room: rtc.Room | lk.Room) -> asyncio.Future[Any]:
    """Resolves to ``(track, publication, participant)`` of the first track ``room`` subscribes to."""
    subscribed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    room.on("track_subscribed", lambda track, pub, p: resolve_once(subscribed, (track, pub, p)))
    return subscribed


async def read_counters(
    stream: Any, read_counter: Callable[[Any], int | None], *, frames: int = 60, seconds: float = 15.0
) -> list[int | None]:
    """The counters ``read_counter`` finds in the first ``frames`` frames of ``stream``,
    or in as many as arrive within ``seconds``; the stream is closed afterwards."""
    counters: list[int | None] = []

    async def consume() -> None:
        async for event in stream:
            counters.append(read_counter(event.frame))
            if len(counters) >= frames:
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(consume(), seconds)
    await stream.aclose()
    return counters


def assert_counters_rise(counters: list[int | None], at_least: int, where: str) -> None:
    """At least ``at_least`` frames were readable, and their counters strictly increase."""
    readable = [c for c in counters if c is not None]
    assert len(readable) >= at_least, f"only {len(readable)} readable frames {where}: {counters}"
    assert readable == sorted(readable) and len(set(readable)) == len(readable), f"out of order {where}: {counters}"


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_official_publisher_to_kitewire_stream(server: Server, codec: str) -> None:
    viewer = rtc.Room()
    publisher = lk.Room()
    subscribed = first_subscription(viewer)
    source = lk.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("kitewire-viewer", "crossover-1"))
        await publisher.connect(server.url, token_for("official-publisher", "crossover-1"))
        track = lk.LocalVideoTrack.create_video_track("official", source)
        options = lk.TrackPublishOptions(
            source=lk.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=getattr(lk.VideoCodec, codec)
        )
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            frame = make_pattern_frame(index, WIDTH, HEIGHT)
            source.capture_frame(lk.VideoFrame(WIDTH, HEIGHT, lk.VideoBufferType.I420, bytes(frame.data)))

        async with capturing(capture):
            remote_track, publication, participant = await asyncio.wait_for(subscribed, 20)
            assert participant.identity == "official-publisher"
            assert publication.source == rtc.TrackSource.SOURCE_CAMERA
            assert publication.mime_type.lower() == f"video/{codec.lower()}"
            stream = rtc.VideoStream(remote_track, format=rtc.VideoBufferType.RGBA)

            def read_rgba(frame: rtc.VideoFrame) -> int | None:
                assert frame.type == rtc.VideoBufferType.RGBA
                return read_frame_counter(frame)

            counters = await read_counters(stream, read_rgba)
    finally:
        await publisher.disconnect()
        await viewer.disconnect()
        await source.aclose()
    assert_counters_rise(counters, 30, "from the official publisher")


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_kitewire_publisher_to_official_stream(server: Server, codec: str) -> None:
    viewer = lk.Room()
    publisher = rtc.Room()
    subscribed = first_subscription(viewer)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("official-viewer", "crossover-2"))
        await publisher.connect(server.url, token_for("kitewire-publisher", "crossover-2"))
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, video_codec=getattr(rtc.VideoCodec, codec)
        )
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))

        async with capturing(capture):
            remote_track, publication, participant = await asyncio.wait_for(subscribed, 20)
            assert participant.identity == "kitewire-publisher"
            assert publication.mime_type.lower() == f"video/{codec.lower()}"
            stream = lk.VideoStream(remote_track)

            def read_official(frame: lk.VideoFrame) -> int | None:
                return read_frame_counter(rtc.VideoFrame(frame.width, frame.height, frame.type, bytes(frame.data)))

            counters = await read_counters(stream, read_official)
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    assert_counters_rise(counters, 54, "at the official viewer")


async def test_official_simulcast_publisher_and_kitewire_layer_selection(server: Server) -> None:
    viewer = rtc.Room()
    publisher = lk.Room()
    subscribed = first_subscription(viewer)
    source = lk.VideoSource(1280, 720)
    frames = [make_pattern_frame(index, 1280, 720) for index in range(30)]
    try:
        await viewer.connect(server.url, token_for("kitewire-viewer", "crossover-3"))
        await publisher.connect(server.url, token_for("official-publisher", "crossover-3"))
        track = lk.LocalVideoTrack.create_video_track("official-hd", source)
        await publisher.local_participant.publish_track(
            track, lk.TrackPublishOptions(source=lk.TrackSource.SOURCE_CAMERA, simulcast=True)
        )

        def capture(index: int) -> None:
            frame = frames[index % len(frames)]
            source.capture_frame(lk.VideoFrame(1280, 720, lk.VideoBufferType.I420, bytes(frame.data)))

        async with capturing(capture):
            remote_track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.simulcasted
            stream = rtc.VideoStream(remote_track, capacity=1)
            try:
                publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
                widths: list[int] = []

                async def consume() -> None:
                    async for event in stream:
                        widths.append(event.frame.width)
                        if len(widths) >= 45:
                            return

                await asyncio.wait_for(consume(), 15)
            finally:
                await stream.aclose()
    finally:
        await publisher.disconnect()
        await viewer.disconnect()
        await source.aclose()
    assert widths[-1] == 320, widths
