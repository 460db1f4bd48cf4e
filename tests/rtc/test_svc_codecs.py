"""VP9 and AV1 video through the kitewire server: official publisher -> kitewire,
kitewire -> official and kitewire -> kitewire, frames counted and read back."""

from __future__ import annotations

import asyncio

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server
from livekit import rtc as lk
from test_official_sdk import assert_counters_rise, first_subscription, read_counters, token_for

from capture_loop import capturing

WIDTH, HEIGHT = 640, 360
CODECS = ["VP9", "AV1"]


@pytest.mark.parametrize(
    ("codec", "scalability_mode"), [("VP9", ""), ("AV1", ""), ("VP9", "L3T3_KEY"), ("AV1", "L3T3_KEY")]
)
async def test_official_publisher_to_kitewire(server: Server, codec: str, scalability_mode: str) -> None:
    viewer, publisher = rtc.Room(), lk.Room()
    subscribed = first_subscription(viewer)
    source = lk.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("kitewire-viewer", f"svc-1-{codec}{scalability_mode}"))
        await publisher.connect(server.url, token_for("official-publisher", f"svc-1-{codec}{scalability_mode}"))
        track = lk.LocalVideoTrack.create_video_track("official", source)
        # livekit's defaults for the codec (simulcast), or one SVC stream of three spatial
        # layers: kitewire decodes the top layer of each picture
        options = lk.TrackPublishOptions(source=lk.TrackSource.SOURCE_CAMERA, video_codec=getattr(lk.VideoCodec, codec))
        if scalability_mode:  # a protobuf field: set means "use this mode", even when empty
            options.scalability_mode = scalability_mode
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            frame = make_pattern_frame(index, WIDTH, HEIGHT)
            source.capture_frame(lk.VideoFrame(WIDTH, HEIGHT, lk.VideoBufferType.I420, bytes(frame.data)))

        async with capturing(capture):
            remote_track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.mime_type.lower() == f"video/{codec.lower()}"
            counters = await read_counters(rtc.VideoStream(remote_track), read_frame_counter)
    finally:
        await publisher.disconnect()
        await viewer.disconnect()
        await source.aclose()
    assert_counters_rise(counters, 30, f"from the official {codec} publisher")


@pytest.mark.parametrize("codec", CODECS)
async def test_kitewire_publisher_to_official(server: Server, codec: str) -> None:
    viewer, publisher = lk.Room(), rtc.Room()
    subscribed = first_subscription(viewer)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("official-viewer", f"svc-2-{codec}"))
        await publisher.connect(server.url, token_for("kitewire-publisher", f"svc-2-{codec}"))
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        # one layer: the codec crossover itself (layer switching of VP9/AV1 simulcast in
        # the SFU is exercised kitewire -> kitewire below and by the SFU's own tests)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, video_codec=getattr(rtc.VideoCodec, codec), simulcast=False
        )
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))

        async with capturing(capture):
            remote_track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.mime_type.lower() == f"video/{codec.lower()}"

            def read_official(frame: lk.VideoFrame) -> int | None:
                return read_frame_counter(rtc.VideoFrame(frame.width, frame.height, frame.type, bytes(frame.data)))

            counters = await read_counters(lk.VideoStream(remote_track), read_official)
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    assert_counters_rise(counters, 45, f"at the official viewer of {codec}")


@pytest.mark.parametrize("codec", CODECS)
async def test_kitewire_to_kitewire(server: Server, codec: str) -> None:
    # livekit's default for VP9 and AV1 without a scalability mode: simulcast layers
    viewer, publisher = rtc.Room(), rtc.Room()
    subscribed = first_subscription(viewer)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("viewer", f"svc-3-{codec}"))
        await publisher.connect(server.url, token_for("publisher", f"svc-3-{codec}"))
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        await publisher.local_participant.publish_track(
            track, rtc.TrackPublishOptions(video_codec=getattr(rtc.VideoCodec, codec))
        )

        def capture(index: int) -> None:
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))

        async with capturing(capture):
            remote_track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.mime_type.lower() == f"video/{codec.lower()}"
            counters = await read_counters(rtc.VideoStream(remote_track), read_frame_counter)
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    assert_counters_rise(counters, 45, f"at the kitewire viewer of {codec}")


def test_publish_options_take_livekit_scalability_modes_and_refuse_others() -> None:
    for mode in ("", "L1T1", "L1T3", "L3T3_KEY", "L2T2_KEY_SHIFT", "S3T3", "L2T1h"):
        assert rtc.TrackPublishOptions(video_codec=rtc.VideoCodec.VP9, scalability_mode=mode).scalability_mode == mode
    for bad in ("L4T1", "l1t1", "L1T3_FOO", "3"):
        with pytest.raises(ValueError, match="scalability_mode"):
            rtc.TrackPublishOptions(scalability_mode=bad)
    # H265 publishes too (tests/rtc/test_h265.py); a codec number livekit lacks does not
    assert rtc.TrackPublishOptions(video_codec=rtc.VideoCodec.H265).video_codec == rtc.VideoCodec.H265
    with pytest.raises(ValueError, match="video_codec"):
        rtc.TrackPublishOptions(video_codec=7)
