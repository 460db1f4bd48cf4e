"""End-to-end encrypted media through the kitewire server, with the official SDK's frame
cryptor on the other side: shared keys, per-participant keys, a wrong key, ratchets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server
from livekit import rtc as lk
from test_official_sdk import assert_counters_rise, first_subscription, read_counters, token_for

from capture_loop import capturing

WIDTH, HEIGHT = 320, 240
SHARED = b"kitewire e2ee test key"
OTHER = b"a different key entirely"


def official_options(key: bytes | None = SHARED) -> lk.RoomOptions:
    provider = lk.KeyProviderOptions(shared_key=key) if key is not None else lk.KeyProviderOptions()
    return lk.RoomOptions(encryption=lk.E2EEOptions(key_provider_options=provider))


def kitewire_options(key: bytes | None = SHARED) -> rtc.RoomOptions:
    provider = rtc.KeyProviderOptions(shared_key=key) if key is not None else rtc.KeyProviderOptions()
    return rtc.RoomOptions(encryption=rtc.E2EEOptions(key_provider_options=provider))


def official_frame(frame: lk.VideoFrame) -> rtc.VideoFrame:
    return rtc.VideoFrame(frame.width, frame.height, frame.type, bytes(frame.data))


def official_counter(frame: lk.VideoFrame) -> int | None:
    return read_frame_counter(official_frame(frame))


def capture_official(source: lk.VideoSource) -> Callable[[int], None]:
    def capture(index: int) -> None:
        frame = make_pattern_frame(index, WIDTH, HEIGHT)
        source.capture_frame(lk.VideoFrame(WIDTH, HEIGHT, lk.VideoBufferType.I420, bytes(frame.data)))

    return capture


def capture_kitewire(source: rtc.VideoSource) -> Callable[[int], None]:
    return lambda index: source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))


@contextlib.asynccontextmanager
async def official_publisher(
    server: Server, room_name: str, identity: str, options: lk.RoomOptions, codec: int = lk.VideoCodec.VP8
) -> AsyncIterator[lk.Room]:
    """An official participant publishing the frame pattern, 30 frames a second, while inside."""
    room, source = lk.Room(), lk.VideoSource(WIDTH, HEIGHT)
    try:
        await room.connect(server.url, token_for(identity, room_name), options)
        track = lk.LocalVideoTrack.create_video_track("official", source)
        publish = lk.TrackPublishOptions(source=lk.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=codec)
        await room.local_participant.publish_track(track, publish)
        async with capturing(capture_official(source)):
            yield room
    finally:
        await room.disconnect()
        await source.aclose()


@contextlib.asynccontextmanager
async def kitewire_publisher(
    server: Server, room_name: str, identity: str, options: rtc.RoomOptions, codec: int = rtc.VideoCodec.VP8
) -> AsyncIterator[rtc.Room]:
    """A kitewire participant publishing the frame pattern, 30 frames a second, while inside."""
    room, source = rtc.Room(), rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await room.connect(server.url, token_for(identity, room_name), options)
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        publish = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=codec)
        await room.local_participant.publish_track(track, publish)
        async with capturing(capture_kitewire(source)):
            yield room
    finally:
        await room.disconnect()
        await source.aclose()


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_official_publisher_with_shared_key_to_kitewire(server: Server, codec: str) -> None:
    viewer = rtc.Room()
    subscribed = first_subscription(viewer)
    await viewer.connect(server.url, token_for("kitewire-viewer", "e2ee-1"), kitewire_options())
    try:
        async with official_publisher(server, "e2ee-1", "official", official_options(), getattr(lk.VideoCodec, codec)):
            track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.encryption_type == rtc.EncryptionType.GCM
            counters = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=30)
            cryptors = viewer.e2ee_manager.frame_cryptors()
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "at the kitewire viewer")
    assert [(c.participant_identity, c.track_sid) for c in cryptors] == [("official", publication.sid)]


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_kitewire_publisher_with_shared_key_to_official(server: Server, codec: str) -> None:
    viewer = lk.Room()
    subscribed = first_subscription(viewer)
    await viewer.connect(server.url, token_for("official-viewer", "e2ee-2"), official_options())
    try:
        async with kitewire_publisher(server, "e2ee-2", "kitewire", kitewire_options(), getattr(rtc.VideoCodec, codec)):
            track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.encryption_type == lk.EncryptionType.GCM
            counters = await read_counters(lk.VideoStream(track), official_counter, frames=30)
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "at the official viewer")


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_kitewire_to_kitewire_shared_key(server: Server, codec: str) -> None:
    viewer = rtc.Room()
    subscribed = first_subscription(viewer)
    await viewer.connect(server.url, token_for("viewer", "e2ee-3"), kitewire_options())
    try:
        async with kitewire_publisher(
            server, "e2ee-3", "publisher", kitewire_options(), getattr(rtc.VideoCodec, codec)
        ):
            track, _, _ = await asyncio.wait_for(subscribed, 20)
            counters = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=30)
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "at the kitewire viewer")


def state_watcher(room: Any, states: list[tuple[str, int]]) -> None:
    room.on("e2ee_state_changed", lambda participant, state: states.append((participant.identity, int(state))))
