"""Refused joins and misbehaving peers, while a room beside them keeps streaming."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from kitewire.server import Server
from kitewire.signal import create_token
from livekit import api, rtc
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from .conftest import Connect, make_token
from .live_room import LiveRoom

pytestmark = pytest.mark.timeout(120)


async def _sdk_refused(server: Server, token: str) -> str:
    room = rtc.Room()
    try:
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(room.connect(server.url, token), 15)
        return str(info.value)
    finally:
        await room.disconnect()


async def _validate(server: Server, token: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{server.http_url}/rtc/v1/validate", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            return response.status, await response.text()


async def test_refusals_leave_a_live_room_alone(server: Server, sdk_rooms: Connect, live_room: LiveRoom) -> None:
    mark, started = live_room.mark(), time.monotonic()

    wrong_secret = make_token("mallory", "live", secret="not-the-secret")
    assert (await _validate(server, wrong_secret))[0] == 401
    assert "signature" in await _sdk_refused(server, wrong_secret)

    expired = create_token("devkey", "secret", identity="late", room="live", ttl=-120)
    status, text = await _validate(server, expired)
    assert status == 401 and "expired" in text
    assert "expired" in await _sdk_refused(server, expired)

    no_join = make_token("lurker", "live", room_join=False)
    status, text = await _validate(server, no_join)
    assert status == 403 and "roomJoin" in text
    assert "roomJoin" in await _sdk_refused(server, no_join)

    # A token names its room; asking for another one is refused.
    other_room = make_token("mallory", "elsewhere")
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{server.http_url}/rtc/validate", params={"access_token": other_room, "room": "live"}
        ) as response:
            assert response.status == 403
            assert "elsewhere" in await response.text()

    # Nothing of the refused joins reached the room.
    live = server.rooms.rooms["live"]
    assert sorted(live.participants) == ["alice", "bob"]
    assert "elsewhere" not in server.rooms.rooms

    await live_room.check_since(mark, started)


async def test_publishing_without_permission_is_refused(
    server: Server, sdk_rooms: Connect, live_room: LiveRoom
) -> None:
    mark, started = live_room.mark(), time.monotonic()
    viewer = await sdk_rooms("viewer", "live", can_publish=False)
    source = rtc.VideoSource(320, 240)
    track = rtc.LocalVideoTrack.create_video_track("sneaky", source)
    # livekit 1.2.1 resolves a publish only on a TrackPublishedResponse for its cid and ignores a
    # RequestResponse for add_track (rtc_session.rs keeps pending_tracks by cid, RequestResponses by
    # request_id, which AddTrackRequest lacks), so it fails after its own 10 s TRACK_PUBLISH_TIMEOUT.
    # A TrackPublishedResponse without a track aborts the SDK's process (an unwrap), so none is sent.
    with pytest.raises(Exception):  # noqa: B017 (the official SDK raises its own error types)
        await asyncio.wait_for(viewer.local_participant.publish_track(track, rtc.TrackPublishOptions()), 15)
    participant = server.rooms.rooms["live"].participants["viewer"]
    assert not participant.published and not participant.pending_tracks
    # The viewer still receives the room's video: it may subscribe.
    assert participant.subscriptions
    await live_room.check_since(mark, started)


async def test_garbage_on_the_signal_socket_disconnects_with_reason(server: Server, live_room: LiveRoom) -> None:
    mark, started = live_room.mark(), time.monotonic()
    token = create_token("devkey", "secret", identity="garbler", room="live")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{server.url}/rtc", params={"access_token": token, "protocol": "16"}) as ws:
            first = await ws.receive(timeout=10)
            join = pb_rtc.SignalResponse.FromString(first.data)
            assert join.WhichOneof("message") == "join"
            await ws.send_bytes(b"\xff\xfe\x00garbage\x01\x02\x03" * 10)
            leave_reason = None
            while True:
                message = await ws.receive(timeout=10)
                if message.type != aiohttp.WSMsgType.BINARY:
                    break
                response = pb_rtc.SignalResponse.FromString(message.data)
                if response.WhichOneof("message") == "leave":
                    leave_reason = response.leave.reason
            assert leave_reason == pb_models.STATE_MISMATCH
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert "bad signal message" in str(message.extra)
    assert "garbler" not in server.rooms.rooms["live"].participants
    await live_room.check_since(mark, started)


async def test_official_api_token_verifier_accepts_kitewire_tokens() -> None:
    token = create_token("devkey", "secret", identity="x", room="y")
    claims = api.TokenVerifier("devkey", "secret").verify(token)
    assert claims.identity == "x"


async def test_publishing_a_source_the_token_does_not_allow(server: Server) -> None:
    grants = api.VideoGrants(room_join=True, room="sources", can_publish=True, can_publish_sources=["microphone"])
    token = api.AccessToken("devkey", "secret").with_identity("miconly").with_grants(grants).to_jwt()
    room = rtc.Room()
    try:
        await asyncio.wait_for(room.connect(server.url, token), 15)
        source = rtc.VideoSource(160, 120)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        with pytest.raises(Exception):  # noqa: B017 (the official SDK raises its own error types)
            await asyncio.wait_for(room.local_participant.publish_track(track, options), 15)
        participant = server.rooms.rooms["sources"].participants["miconly"]
        assert not participant.published and not participant.pending_tracks
    finally:
        await room.disconnect()
