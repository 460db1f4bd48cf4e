"""Frame metadata (user timestamp, frame id) in LiveKit's packet trailer, through the
kitewire server: official publisher -> kitewire, kitewire -> official, kitewire -> kitewire."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server
from livekit import rtc as lk
from test_official_sdk import first_subscription, token_for

from capture_loop import capturing

WIDTH, HEIGHT = 320, 240
FEATURES = [rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP, rtc.FrameMetadataFeature.FMF_FRAME_ID]


def user_timestamp_of(index: int) -> int:
    # far from any clock reading, so a timestamp taken from elsewhere cannot pass
    return 1_700_000_000_000_000 + 7919 * index


async def collect(stream: Any, to_kitewire_frame: Any, *, frames: int = 30, seconds: float = 15.0) -> list[Any]:
    """(pattern counter, metadata) of the first ``frames`` events of ``stream``."""
    seen: list[tuple[int | None, Any]] = []

    async def consume() -> None:
        async for event in stream:
            seen.append((read_frame_counter(to_kitewire_frame(event.frame)), event.metadata))
            if len(seen) >= frames:
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(consume(), seconds)
    await stream.aclose()
    return seen


def assert_metadata_follows_frames(seen: list[Any], at_least: int) -> None:
    readable = [(counter, metadata) for counter, metadata in seen if counter is not None]
    assert len(readable) >= at_least, f"only {len(readable)} readable frames: {seen}"
    for counter, metadata in readable:
        assert metadata is not None, f"frame {counter} arrived without metadata"
        assert metadata.frame_id == counter + 1
        assert metadata.user_timestamp == user_timestamp_of(counter)


def official_frame(frame: lk.VideoFrame) -> rtc.VideoFrame:
    return rtc.VideoFrame(frame.width, frame.height, frame.type, bytes(frame.data))


@pytest.mark.parametrize("codec", ["VP8", "H264", "VP9", "AV1"])
async def test_official_publisher_metadata_reaches_kitewire(server: Server, codec: str) -> None:
    viewer, publisher = rtc.Room(), lk.Room()
    subscribed = first_subscription(viewer)
    source = lk.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("kitewire-viewer", "metadata-1"))
        await publisher.connect(server.url, token_for("official-publisher", "metadata-1"))
        track = lk.LocalVideoTrack.create_video_track("official", source)
        options = lk.TrackPublishOptions(
            source=lk.TrackSource.SOURCE_CAMERA,
            simulcast=False,
            video_codec=getattr(lk.VideoCodec, codec),
            frame_metadata_features=[lk.FrameMetadataFeature.FMF_USER_TIMESTAMP, lk.FrameMetadataFeature.FMF_FRAME_ID],
        )
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            frame = make_pattern_frame(index, WIDTH, HEIGHT)
            metadata = lk.FrameMetadata(user_timestamp=user_timestamp_of(index), frame_id=index + 1)
            source.capture_frame(
                lk.VideoFrame(WIDTH, HEIGHT, lk.VideoBufferType.I420, bytes(frame.data)), metadata=metadata
            )

        async with capturing(capture):
            remote_track, _, _ = await asyncio.wait_for(subscribed, 20)
            seen = await collect(rtc.VideoStream(remote_track), lambda frame: frame)
    finally:
        await publisher.disconnect()
        await viewer.disconnect()
        await source.aclose()
    assert_metadata_follows_frames(seen, 20)


@pytest.mark.parametrize("codec", ["VP8", "H264", "VP9", "AV1"])
async def test_kitewire_publisher_metadata_reaches_official(server: Server, codec: str) -> None:
    viewer, publisher = lk.Room(), rtc.Room()
    subscribed = first_subscription(viewer)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("official-viewer", "metadata-2"))
        await publisher.connect(server.url, token_for("kitewire-publisher", "metadata-2"))
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            video_codec=getattr(rtc.VideoCodec, codec),
            frame_metadata_features=FEATURES,
        )
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            metadata = rtc.FrameMetadata(user_timestamp=user_timestamp_of(index), frame_id=index + 1)
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT), metadata=metadata)

        async with capturing(capture):
            remote_track, _, _ = await asyncio.wait_for(subscribed, 20)
            seen = await collect(lk.VideoStream(remote_track), official_frame)
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    assert_metadata_follows_frames(seen, 20)


async def test_kitewire_to_kitewire_metadata_only_the_published_features(server: Server) -> None:
    viewer, publisher = rtc.Room(), rtc.Room()
    subscribed = first_subscription(viewer)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("viewer", "metadata-3"))
        await publisher.connect(server.url, token_for("publisher", "metadata-3"))
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        options = rtc.TrackPublishOptions(
            simulcast=False, frame_metadata_features=[rtc.FrameMetadataFeature.FMF_FRAME_ID]
        )
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            metadata = rtc.FrameMetadata(user_timestamp=user_timestamp_of(index), frame_id=index + 1, user_data=b"x")
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT), metadata=metadata)

        async with capturing(capture):
            remote_track, _, _ = await asyncio.wait_for(subscribed, 20)
            seen = await collect(rtc.VideoStream(remote_track), lambda frame: frame)
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    readable = [(counter, metadata) for counter, metadata in seen if counter is not None]
    assert len(readable) >= 20, seen
    for counter, metadata in readable:
        # only the frame id was published: the timestamp and user data stay home
        assert metadata == rtc.FrameMetadata(frame_id=counter + 1)


def test_bad_metadata_is_refused_with_a_clear_error() -> None:
    source = rtc.VideoSource(WIDTH, HEIGHT)
    frame = make_pattern_frame(0, WIDTH, HEIGHT)
    with pytest.raises(ValueError, match="metadata"):
        source.capture_frame(frame, metadata="frame 1")
    with pytest.raises(ValueError, match="frame_id"):
        rtc.FrameMetadata(frame_id=1 << 32)
    with pytest.raises(ValueError, match="frame_metadata_features"):
        rtc.TrackPublishOptions(frame_metadata_features=[7])
