"""H265 through the kitewire server: a kitewire publisher (libx265, RFC 7798 payloads) to a
kitewire subscriber, with the engine in the media process and in the application's, simulcast
and one layer, a viewer joining late, end-to-end encrypted.

Not here: the official SDK with H265. Its libwebrtc (livekit 1.2.1's liblivekit_ffi.so) has
H265 only through NVIDIA's NVENC/NVDEC factories, and this machine has no NVIDIA device: an
official subscriber of a kitewire H265 track gets the subscription and no frame, and an
official publisher asked for H265 publishes VP8."""

from __future__ import annotations

import asyncio

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server
from test_e2ee import kitewire_options, kitewire_publisher
from test_official_sdk import assert_counters_rise, first_subscription, read_counters, token_for

from capture_loop import capturing

WIDTH, HEIGHT = 640, 360


@pytest.mark.parametrize(
    ("media_process", "simulcast"), [(True, False), (False, False), (True, True)], ids=["process", "inline", "layers"]
)
async def test_kitewire_to_kitewire(
    server: Server, media_process: bool, simulcast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the engine encodes in the media process by default, in the application's with 0
    monkeypatch.setenv("KITEWIRE_MEDIA_PROCESS", "1" if media_process else "0")
    room_name = f"h265-1-{media_process}-{simulcast}"
    viewer, publisher = rtc.Room(), rtc.Room()
    subscribed = first_subscription(viewer)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await viewer.connect(server.url, token_for("viewer", room_name))
        await publisher.connect(server.url, token_for("publisher", room_name))
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.H265, simulcast=simulcast
        )
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))

        async with capturing(capture):
            remote_track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.mime_type.lower() == "video/h265"
            counters = await read_counters(rtc.VideoStream(remote_track), read_frame_counter)
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    assert_counters_rise(counters, 45, "at the kitewire viewer of H265")


async def test_a_late_viewer_decodes_from_the_keyframe_it_asks_for(server: Server) -> None:
    # the publisher has sent its first keyframe long before: the viewer's keyframe request
    # brings an IDR with VPS/SPS/PPS in front (repeat-headers), which it decodes from
    publisher, viewer = rtc.Room(), rtc.Room()
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await publisher.connect(server.url, token_for("publisher", "h265-3"))
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        options = rtc.TrackPublishOptions(video_codec=rtc.VideoCodec.H265, simulcast=False)
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))

        async with capturing(capture):
            await asyncio.sleep(2)  # 60 frames go to the SFU before anyone watches
            subscribed = first_subscription(viewer)
            await viewer.connect(server.url, token_for("viewer", "h265-3"))
            remote_track, _, _ = await asyncio.wait_for(subscribed, 20)
            counters = await read_counters(rtc.VideoStream(remote_track), read_frame_counter, frames=30)
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    assert_counters_rise(counters, 20, "at the late H265 viewer")
    readable = [counter for counter in counters if counter is not None]
    # frame 0 (the first keyframe) went out two seconds before the viewer joined
    assert readable[0] > 0, f"the late viewer started at the first keyframe: {readable[:5]}"


async def test_kitewire_to_kitewire_encrypted(server: Server) -> None:
    # the frame cryptor leaves H265's NAL headers and first slice bytes readable, as for H264
    viewer = rtc.Room()
    subscribed = first_subscription(viewer)
    await viewer.connect(server.url, token_for("viewer", "h265-2"), kitewire_options())
    try:
        async with kitewire_publisher(server, "h265-2", "publisher", kitewire_options(), "H265"):
            track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.mime_type.lower() == "video/h265"
            assert publication.encryption_type == rtc.EncryptionType.GCM
            counters = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=30)
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "at the encrypted kitewire viewer of H265")


def test_publish_options_take_h265() -> None:
    assert rtc.TrackPublishOptions(video_codec=rtc.VideoCodec.H265).video_codec == rtc.VideoCodec.H265
    with pytest.raises(ValueError, match=r"H265 \(4\), got 9"):
        rtc.TrackPublishOptions(video_codec=9)
