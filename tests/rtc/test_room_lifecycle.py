"""Room lifecycle edge cases: refused joins, the server going away, local followers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server, ServerConfig
from kitewire.signal import DEV_API_KEY, create_token

from futures import resolve_once


def token_for(identity: str, room: str = "lifecycle") -> str:
    from kitewire.signal import DEV_API_SECRET

    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)


async def test_bad_token_is_a_connect_error(server: Server) -> None:
    room = rtc.Room()
    forged = create_token(DEV_API_KEY, "not-the-secret", identity="mallory", room="lifecycle")
    with pytest.raises(rtc.ConnectError) as caught:
        await room.connect(server.url, forged, rtc.RoomOptions(connect_timeout=5))
    assert caught.value.message
    assert not room.isconnected()
    assert room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED


async def test_server_shutdown_disconnects_the_room_and_ends_streams() -> None:
    server = Server(ServerConfig.dev(port=0, log_level="warning"))
    await server.start()
    viewer, publisher = rtc.Room(), rtc.Room()
    source = rtc.VideoSource(320, 180)
    stream: rtc.VideoStream | None = None
    task: asyncio.Task[None] | None = None
    try:
        subscribed: asyncio.Future[rtc.RemoteVideoTrack] = asyncio.get_running_loop().create_future()
        viewer.on("track_subscribed", lambda track, pub, p: resolve_once(subscribed, track))
        disconnected: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        viewer.on("disconnected", lambda reason: resolve_once(disconnected, reason))
        await viewer.connect(server.url, token_for("viewer"))
        await publisher.connect(server.url, token_for("publisher"))
        track = rtc.LocalVideoTrack.create_video_track("pattern", source)
        await publisher.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )

        async def capture() -> None:
            index = 0
            while True:
                source.capture_frame(make_pattern_frame(index, 320, 180))
                index += 1
                await asyncio.sleep(1 / 30)

        task = asyncio.get_running_loop().create_task(capture())
        remote = await asyncio.wait_for(subscribed, 15)
        stream = rtc.VideoStream(remote)
        await asyncio.wait_for(stream.__anext__(), 10)
        await server.stop()
        reason = await asyncio.wait_for(disconnected, 15)
        assert reason != rtc.DisconnectReason.CLIENT_INITIATED
        assert not viewer.isconnected()

        async def drain() -> None:
            async for _ in stream:
                pass

        await asyncio.wait_for(drain(), 10)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if stream is not None:
            await stream.aclose()
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
        await server.stop()


async def test_from_participant_on_the_local_participant_yields_captured_frames(server: Server) -> None:
    room = rtc.Room()
    source = rtc.VideoSource(320, 180)
    try:
        await room.connect(server.url, token_for("solo", "local-follow"))
        follower = rtc.VideoStream.from_participant(
            participant=room.local_participant, track_source=rtc.TrackSource.SOURCE_CAMERA
        )
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        publication = await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )
        assert room.local_participant.track_publications[publication.sid] is publication
        source.capture_frame(make_pattern_frame(42, 320, 180), timestamp_us=123)
        event = await asyncio.wait_for(follower.__anext__(), 5)
        assert read_frame_counter(event.frame) == 42 and event.timestamp_us == 123
        await room.local_participant.unpublish_track(publication.sid)
        assert publication.sid not in room.local_participant.track_publications
        with pytest.raises(ValueError, match="published track"):
            await room.local_participant.unpublish_track(publication.sid)
        await room.disconnect()
        assert [e async for e in follower] == []
    finally:
        await room.disconnect()
        await source.aclose()


async def test_publish_before_connect_is_refused() -> None:
    room = rtc.Room()
    with pytest.raises(Exception, match="local participant"):
        _ = room.local_participant
    source = rtc.VideoSource(64, 64)
    track = rtc.LocalVideoTrack.create_video_track("x", source)
    assert track.sid == "" and track.kind == rtc.TrackKind.KIND_VIDEO
    await source.aclose()


async def test_publishing_without_permission_is_a_publish_track_error(server: Server) -> None:
    from kitewire.signal import DEV_API_SECRET

    room = rtc.Room()
    source = rtc.VideoSource(64, 64)
    token = create_token(DEV_API_KEY, DEV_API_SECRET, identity="watcher", room="no-publish", can_publish=False)
    try:
        await room.connect(server.url, token)
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        with pytest.raises(rtc.PublishTrackError, match="NOT_ALLOWED"):
            await asyncio.wait_for(room.local_participant.publish_track(track), 5)
        assert room.local_participant.track_publications == {}
        assert room.isconnected()
    finally:
        await room.disconnect()
        await source.aclose()
