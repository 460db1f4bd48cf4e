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
from test_frame_metadata import assert_metadata_follows_frames, collect, user_timestamp_of
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
    server: Server, room_name: str, identity: str, options: lk.RoomOptions, codec: str = "VP8"
) -> AsyncIterator[lk.Room]:
    """An official participant publishing the frame pattern, 30 frames a second, while inside."""
    room, source = lk.Room(), lk.VideoSource(WIDTH, HEIGHT)
    try:
        await room.connect(server.url, token_for(identity, room_name), options)
        track = lk.LocalVideoTrack.create_video_track("official", source)
        publish = lk.TrackPublishOptions(
            source=lk.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=getattr(lk.VideoCodec, codec)
        )
        await room.local_participant.publish_track(track, publish)
        async with capturing(capture_official(source)):
            yield room
    finally:
        await room.disconnect()
        await source.aclose()


@contextlib.asynccontextmanager
async def kitewire_publisher(
    server: Server, room_name: str, identity: str, options: rtc.RoomOptions, codec: str = "VP8"
) -> AsyncIterator[rtc.Room]:
    """A kitewire participant publishing the frame pattern, 30 frames a second, while inside."""
    room, source = rtc.Room(), rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await room.connect(server.url, token_for(identity, room_name), options)
        track = rtc.LocalVideoTrack.create_video_track("kitewire", source)
        publish = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=getattr(rtc.VideoCodec, codec)
        )
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
    statuses: list[tuple[str, bool]] = []
    viewer.on("participant_encryption_status_changed", lambda p, encrypted: statuses.append((p.identity, encrypted)))
    await viewer.connect(server.url, token_for("kitewire-viewer", "e2ee-1"), kitewire_options())
    try:
        async with official_publisher(server, "e2ee-1", "official", official_options(), codec):
            track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.encryption_type == rtc.EncryptionType.GCM
            counters = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=30)
            cryptors = viewer.e2ee_manager.frame_cryptors()
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "at the kitewire viewer")
    assert [(c.participant_identity, c.track_sid) for c in cryptors] == [("official", publication.sid)]
    assert ("official", True) in statuses


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_kitewire_publisher_with_shared_key_to_official(server: Server, codec: str) -> None:
    viewer = lk.Room()
    subscribed = first_subscription(viewer)
    await viewer.connect(server.url, token_for("official-viewer", "e2ee-2"), official_options())
    try:
        async with kitewire_publisher(server, "e2ee-2", "kitewire", kitewire_options(), codec):
            track, publication, _ = await asyncio.wait_for(subscribed, 20)
            assert publication.encryption_type == lk.EncryptionType.GCM
            counters = await read_counters(lk.VideoStream(track), official_counter, frames=30)
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "at the official viewer")


@pytest.mark.parametrize(("codec", "media_process"), [("VP8", True), ("H264", True), ("VP8", False)])
async def test_kitewire_to_kitewire_shared_key(
    server: Server, codec: str, media_process: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the engine encrypts in the media process by default, and in the application's with 0
    monkeypatch.setenv("KITEWIRE_MEDIA_PROCESS", "1" if media_process else "0")
    viewer = rtc.Room()
    subscribed = first_subscription(viewer)
    await viewer.connect(server.url, token_for("viewer", "e2ee-3"), kitewire_options())
    try:
        async with kitewire_publisher(server, "e2ee-3", "publisher", kitewire_options(), codec):
            track, _, _ = await asyncio.wait_for(subscribed, 20)
            counters = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=30)
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "at the kitewire viewer")


def state_watcher(room: Any, states: list[tuple[str, int]]) -> None:
    room.on("e2ee_state_changed", lambda participant, state: states.append((participant.identity, int(state))))


async def wait_for_state(states: list[tuple[str, int]], wanted: tuple[str, int], seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while wanted not in states:
        assert asyncio.get_running_loop().time() < deadline, f"no {wanted} among {states}"
        await asyncio.sleep(0.05)


async def test_per_participant_keys_both_ways(server: Server) -> None:
    # no shared key: each publisher encrypts with its own key, each viewer is told the other's
    official_key, kitewire_key = b"the official participant's key", b"kitewire's own key"
    ours = rtc.Room()
    ours_subscribed = first_subscription(ours)
    await ours.connect(server.url, token_for("kitewire", "e2ee-4"), kitewire_options(key=None))
    provider = ours.e2ee_manager.key_provider
    assert provider is not None
    provider.set_key("kitewire", kitewire_key, 0)
    provider.set_key("official", official_key, 0)
    theirs, source = lk.Room(), lk.VideoSource(WIDTH, HEIGHT)
    theirs_subscribed = first_subscription(theirs)
    ours_source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await theirs.connect(server.url, token_for("official", "e2ee-4"), official_options(key=None))
        their_provider = theirs.e2ee_manager.key_provider
        assert their_provider is not None
        their_provider.set_key("official", official_key, 0)
        their_provider.set_key("kitewire", kitewire_key, 0)
        await theirs.local_participant.publish_track(
            lk.LocalVideoTrack.create_video_track("official", source),
            lk.TrackPublishOptions(source=lk.TrackSource.SOURCE_CAMERA, simulcast=False),
        )
        await ours.local_participant.publish_track(
            rtc.LocalVideoTrack.create_video_track("kitewire", ours_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False),
        )
        async with capturing(capture_official(source)), capturing(capture_kitewire(ours_source)):
            their_track, _, _ = await asyncio.wait_for(ours_subscribed, 20)
            our_track, _, _ = await asyncio.wait_for(theirs_subscribed, 20)
            at_ours, at_theirs = await asyncio.gather(
                read_counters(rtc.VideoStream(their_track), read_frame_counter, frames=30),
                read_counters(lk.VideoStream(our_track), official_counter, frames=30),
            )
        assert provider.export_key("official", 0) == official_key
    finally:
        await theirs.disconnect()
        await ours.disconnect()
        await source.aclose()
        await ours_source.aclose()
    assert_counters_rise(at_ours, 20, "at kitewire (the official participant's key)")
    assert_counters_rise(at_theirs, 20, "at the official participant (kitewire's key)")


async def test_wrong_key_reports_decryption_failed_drops_frames_and_recovers(server: Server) -> None:
    viewer = rtc.Room()
    subscribed = first_subscription(viewer)
    states: list[tuple[str, int]] = []
    state_watcher(viewer, states)
    received: list[bytes] = []
    viewer.on("data_received", lambda packet: received.append(packet.data))
    await viewer.connect(server.url, token_for("kitewire-viewer", "e2ee-5"), kitewire_options(key=OTHER))
    try:
        async with official_publisher(server, "e2ee-5", "official", official_options()) as publisher:
            track, _, _ = await asyncio.wait_for(subscribed, 20)
            await wait_for_state(states, ("official", rtc.EncryptionState.DECRYPTION_FAILED))
            garbled = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=10, seconds=3)
            # data sealed with the other key is dropped too, not delivered as garbage
            await publisher.local_participant.publish_data(b"sealed with the right key", reliable=True)
            await asyncio.sleep(1.0)
            unopened = list(received)
            assert viewer.connection_state == rtc.ConnectionState.CONN_CONNECTED
            provider = viewer.e2ee_manager.key_provider
            assert provider is not None
            provider.set_shared_key(SHARED, 0)
            recovered = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=30)
            # the room kept working: with the key fixed, data opens as well
            await publisher.local_participant.publish_data(b"still here", reliable=True)
            for _ in range(200):
                if received:
                    break
                await asyncio.sleep(0.05)
    finally:
        await viewer.disconnect()
    assert garbled == [], f"frames under a wrong key reached the stream: {garbled}"
    assert unopened == []
    assert received == [b"still here"]
    assert_counters_rise(recovered, 20, "after the right key was set")
    assert ("official", rtc.EncryptionState.OK) in states[states.index(("official", 3)) :]


async def test_ratchet_on_both_sides_keeps_video_flowing(server: Server) -> None:
    viewer = lk.Room()
    subscribed = first_subscription(viewer)
    await viewer.connect(server.url, token_for("official-viewer", "e2ee-6"), official_options())
    try:
        async with kitewire_publisher(server, "e2ee-6", "kitewire", kitewire_options()) as publisher:
            track, _, _ = await asyncio.wait_for(subscribed, 20)
            before = await read_counters(lk.VideoStream(track), official_counter, frames=15)
            ours, theirs = publisher.e2ee_manager.key_provider, viewer.e2ee_manager.key_provider
            assert ours is not None and theirs is not None
            our_material, their_material = ours.ratchet_shared_key(0), theirs.ratchet_shared_key(0)
            after = await read_counters(lk.VideoStream(track), official_counter, frames=30)
            exported = ours.export_shared_key(0)
    finally:
        await viewer.disconnect()
    # the same derivation on both sides: the ratcheted key material is identical
    assert our_material == their_material and len(our_material) == 32
    assert exported == our_material
    assert_counters_rise(before, 10, "before the ratchet")
    assert_counters_rise(after, 20, "after both sides ratcheted")


async def test_publisher_ratchet_alone_is_followed_by_the_ratchet_window(server: Server) -> None:
    viewer = rtc.Room()
    subscribed = first_subscription(viewer)
    states: list[tuple[str, int]] = []
    state_watcher(viewer, states)
    await viewer.connect(server.url, token_for("kitewire-viewer", "e2ee-7"), kitewire_options())
    try:
        async with official_publisher(server, "e2ee-7", "official", official_options()) as publisher:
            track, _, _ = await asyncio.wait_for(subscribed, 20)
            provider = publisher.e2ee_manager.key_provider
            assert provider is not None
            provider.ratchet_shared_key(0)  # the viewer is not told: it must ratchet by itself
            await wait_for_state(states, ("official", rtc.EncryptionState.KEY_RATCHETED))
            counters = await read_counters(rtc.VideoStream(track), read_frame_counter, frames=30)
    finally:
        await viewer.disconnect()
    assert_counters_rise(counters, 20, "after the publisher's ratchet")


def test_bad_e2ee_options_and_keys_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="key_ring_size"):
        rtc.E2EEManager(rtc.E2EEOptions(rtc.KeyProviderOptions(key_ring_size=0)), lambda request: None)
    manager = rtc.E2EEManager(rtc.E2EEOptions(), lambda request: None)
    provider = manager.key_provider
    assert provider is not None
    with pytest.raises(ValueError, match="key_index"):
        provider.set_key("someone", b"key", 16)
    with pytest.raises(ValueError, match="key"):
        provider.set_shared_key(b"", 0)
    assert provider.export_key("nobody", 0) == b""
    assert provider.ratchet_key("nobody", 0) == b""
    assert rtc.E2EEManager(None, lambda request: None).frame_cryptors() == []


@pytest.mark.parametrize("codec", ["VP9", "AV1"])
async def test_an_encrypted_room_refuses_codecs_it_cannot_encrypt(server: Server, codec: str) -> None:
    room, source = rtc.Room(), rtc.VideoSource(WIDTH, HEIGHT)
    await room.connect(server.url, token_for("publisher", "e2ee-8"), kitewire_options())
    try:
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        options = rtc.TrackPublishOptions(simulcast=False, video_codec=getattr(rtc.VideoCodec, codec))
        with pytest.raises(rtc.PublishTrackError, match=f"publishes VP8, H264 or H265, not {codec}"):
            await room.local_participant.publish_track(track, options)
        # the room goes on: a VP8 track publishes
        await room.local_participant.publish_track(track, rtc.TrackPublishOptions(simulcast=False))
    finally:
        await room.disconnect()
        await source.aclose()


@pytest.mark.parametrize("publisher_sdk", ["official", "kitewire"])
async def test_frame_metadata_travels_outside_the_encryption(server: Server, publisher_sdk: str) -> None:
    # the packet trailer goes after the encrypted frame, as the official SDK writes it
    official_publishes = publisher_sdk == "official"
    sdk: Any = lk if official_publishes else rtc
    viewer: Any = rtc.Room() if official_publishes else lk.Room()
    publisher: Any = sdk.Room()
    subscribed = first_subscription(viewer)
    source = sdk.VideoSource(WIDTH, HEIGHT)
    features = [sdk.FrameMetadataFeature.FMF_USER_TIMESTAMP, sdk.FrameMetadataFeature.FMF_FRAME_ID]
    try:
        viewer_options = kitewire_options() if official_publishes else official_options()
        await viewer.connect(server.url, token_for("viewer", f"e2ee-meta-{publisher_sdk}"), viewer_options)
        publisher_options = official_options() if official_publishes else kitewire_options()
        await publisher.connect(server.url, token_for("publisher", f"e2ee-meta-{publisher_sdk}"), publisher_options)
        track = sdk.LocalVideoTrack.create_video_track("camera", source)
        options = sdk.TrackPublishOptions(simulcast=False, frame_metadata_features=features)
        await publisher.local_participant.publish_track(track, options)

        def capture(index: int) -> None:
            frame: Any = make_pattern_frame(index, WIDTH, HEIGHT)
            if official_publishes:
                frame = lk.VideoFrame(WIDTH, HEIGHT, lk.VideoBufferType.I420, bytes(frame.data))
            source.capture_frame(
                frame, metadata=sdk.FrameMetadata(user_timestamp=user_timestamp_of(index), frame_id=index + 1)
            )

        async with capturing(capture):
            remote_track, _, _ = await asyncio.wait_for(subscribed, 20)
            stream = rtc.VideoStream(remote_track) if official_publishes else lk.VideoStream(remote_track)
            seen = await collect(stream, (lambda frame: frame) if official_publishes else official_frame)
    finally:
        await publisher.disconnect()
        await viewer.disconnect()
        await source.aclose()
    assert_metadata_follows_frames(seen, 20)
