"""The server's signalling, driven by kitewire's own signal client (no media)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from kitewire.server import Server, ServerConfig
from kitewire.signal import SignalClient, SignalConnectError, connect, create_token
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

pytestmark = pytest.mark.timeout(60)


def token(identity: str, room: str = "room", **grants: Any) -> str:
    return create_token("devkey", "secret", identity=identity, room=room, **grants)


async def next_of(client: SignalClient, kind: str, timeout: float = 5.0) -> pb_rtc.SignalResponse:
    """The next response of ``kind``, skipping others (offers, trickles, ...)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await client.recv(timeout=max(0.01, deadline - loop.time()))
        assert message is not None, f"connection closed while waiting for {kind}"
        if message.WhichOneof("message") == kind:
            return message


@pytest.mark.parametrize("legacy", [True, False])
async def test_join_response_and_participant_updates(server: Server, legacy: bool) -> None:
    alice, join_a = await connect(server.url, token("alice"), legacy=legacy)
    try:
        assert join_a.room.name == "room" and join_a.room.sid.startswith("RM_")
        assert join_a.participant.identity == "alice" and join_a.participant.sid.startswith("PA_")
        assert join_a.participant.permission.can_publish
        assert list(join_a.other_participants) == []
        assert join_a.ping_interval > 0 and join_a.ping_timeout > join_a.ping_interval
        assert join_a.server_info.protocol > 0
        # No STUN/TURN server is ever handed to clients.
        assert list(join_a.ice_servers) == []
        # Dual-PC clients (/rtc) get a subscriber offer right away; single-PC ones never do.
        assert join_a.subscriber_primary is legacy

        bob, join_b = await connect(server.url, token("bob"), legacy=legacy)
        try:
            assert [p.identity for p in join_b.other_participants] == ["alice"]
            update = await next_of(alice, "update")
            assert [(p.identity, p.state) for p in update.update.participants] == [
                ("bob", pb_models.ParticipantInfo.JOINED)
            ]
        finally:
            await bob.close()
        update = await next_of(alice, "update")
        left = update.update.participants[0]
        assert left.identity == "bob" and left.state == pb_models.ParticipantInfo.DISCONNECTED
    finally:
        await alice.close()


async def test_dual_pc_client_gets_subscriber_offer_with_data_channels(server: Server) -> None:
    client, _join = await connect(server.url, token("dual"), legacy=True)
    try:
        offer = await next_of(client, "offer")
        sdp = offer.offer.sdp
        assert "m=application" in sdp
        candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
        assert candidates, "the offer embeds the server's candidates"
        # Bound to 127.0.0.1, the server gathers nothing else: no STUN, no other interface.
        assert all(line.split()[4] == "127.0.0.1" for line in candidates), candidates
        assert all(" typ host" in line for line in candidates), candidates
    finally:
        await client.close()


async def test_add_track_answered_with_track_published(server: Server) -> None:
    client, _ = await connect(server.url, token("pub"), legacy=True)
    try:
        request = pb_rtc.SignalRequest()
        request.add_track.cid = "my-camera"
        request.add_track.type = pb_models.VIDEO
        request.add_track.name = "camera"
        request.add_track.width, request.add_track.height = 640, 480
        await client.send(request)
        published = await next_of(client, "track_published")
        assert published.track_published.cid == "my-camera"
        assert published.track_published.track.sid.startswith("TR_")
        assert published.track_published.track.width == 640
    finally:
        await client.close()


async def test_add_track_without_permission_gets_request_response(server: Server) -> None:
    client, _ = await connect(server.url, token("viewer", can_publish=False), legacy=True)
    try:
        request = pb_rtc.SignalRequest()
        request.add_track.cid = "x"
        request.add_track.type = pb_models.VIDEO
        await client.send(request)
        refused = await next_of(client, "request_response")
        assert refused.request_response.reason == pb_rtc.RequestResponse.NOT_ALLOWED
        assert "canPublish" in refused.request_response.message
    finally:
        await client.close()


async def test_ping_and_ping_req_answered(server: Server) -> None:
    client, _ = await connect(server.url, token("pinger"), legacy=True, keepalive=False)
    try:
        request = pb_rtc.SignalRequest()
        request.ping = 12345
        await client.connection.send(request)
        request = pb_rtc.SignalRequest()
        request.ping_req.timestamp = 777
        await client.connection.send(request)
        seen: dict[str, pb_rtc.SignalResponse] = {}
        while len(seen) < 2:
            message = await client.connection.receive(timeout=5)
            assert message is not None
            kind = message.WhichOneof("message")
            if kind in ("pong", "pong_resp"):
                seen[kind] = message
        assert seen["pong"].pong == 12345
        assert seen["pong_resp"].pong_resp.last_ping_timestamp == 777
    finally:
        await client.close()


async def test_same_identity_replaces_old_session(server: Server) -> None:
    first, join1 = await connect(server.url, token("dup"), legacy=True)
    second, join2 = await connect(server.url, token("dup"), legacy=True)
    try:
        leave = await next_of(first, "leave")
        assert leave.leave.reason == pb_models.DUPLICATE_IDENTITY
        assert join1.participant.sid != join2.participant.sid
        room = server.rooms.rooms["room"]
        assert room.participants["dup"].sid == join2.participant.sid
    finally:
        await first.close()
        await second.close()


async def test_room_closes_after_last_participant(server: Server) -> None:
    client, join = await connect(server.url, token("solo", room="ephemeral"), legacy=True)
    assert "ephemeral" in server.rooms.rooms
    await client.close()
    for _ in range(50):
        if "ephemeral" not in server.rooms.rooms:
            break
        await asyncio.sleep(0.1)
    assert "ephemeral" not in server.rooms.rooms
    # Joining again makes a new room.
    again, join_again = await connect(server.url, token("solo", room="ephemeral"), legacy=True)
    try:
        assert join_again.room.sid != join.room.sid
    finally:
        await again.close()


async def test_signal_client_sees_refusal_reason(server: Server) -> None:
    with pytest.raises(SignalConnectError) as info:
        await connect(server.url, create_token("devkey", "wrong", identity="x", room="room"))
    assert info.value.status == 401 and "signature" in info.value.reason
    with pytest.raises(SignalConnectError) as info:
        await connect(server.url, token("x", room_join=False))
    assert info.value.status == 403


async def test_plain_http_on_rtc_is_refused(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.http_url}/rtc", params={"access_token": token("http")}) as response:
            assert response.status == 400
            assert "WebSocket" in await response.text()
        async with session.get(f"{server.http_url}/rtc/v1", params={"join_request": "!!!"}) as response:
            assert response.status == 400
            assert "join_request" in await response.text()


async def test_ping_timeout_removes_silent_client() -> None:
    config = ServerConfig.dev(port=0, ping_interval=1, ping_timeout=2, empty_timeout=0.2)
    async with Server(config) as srv:
        client, _ = await connect(srv.url, token("quiet"), legacy=True, keepalive=False)
        try:
            leave = await next_of(client, "leave", timeout=6)
            assert leave.leave.reason == pb_models.SIGNAL_CLOSE
            room = srv.rooms.rooms.get("room")
            assert room is None or "quiet" not in room.participants
        finally:
            await client.close()


async def test_server_stop_disconnects_everyone() -> None:
    srv = Server(ServerConfig.dev(port=0))
    await srv.start()
    client, _ = await connect(srv.url, token("last"), legacy=True)
    try:
        await srv.stop()
        leave = await next_of(client, "leave")
        assert leave.leave.reason == pb_models.SERVER_SHUTDOWN
    finally:
        await client.close()


async def test_client_whose_peer_connection_never_connects_is_removed() -> None:
    config = ServerConfig.dev(port=0, ice_connect_timeout=1.0, empty_timeout=0.2)
    async with Server(config) as srv:
        # A subscriber-less watcher has no PeerConnection to wait for, so it stays.
        watcher, _ = await connect(srv.url, token("watcher", can_subscribe=False), legacy=True)
        # This client joins but never answers the subscriber offer, so ICE cannot start.
        mute, _join = await connect(srv.url, token("mute"), legacy=True)
        try:
            await next_of(watcher, "update")  # mute joined
            leave = await next_of(mute, "leave", timeout=5)
            assert leave.leave.reason == pb_models.CONNECTION_TIMEOUT
            gone = await next_of(watcher, "update", timeout=5)
            info = gone.update.participants[0]
            assert info.identity == "mute" and info.state == pb_models.ParticipantInfo.DISCONNECTED
        finally:
            await mute.close()
            await watcher.close()


@pytest.mark.parametrize("legacy", [True, False])
async def test_resume_request_is_told_to_rejoin(server: Server, legacy: bool) -> None:
    first, join = await connect(server.url, token("resumer"), legacy=legacy)
    try:
        request = pb_rtc.JoinRequest()
        request.reconnect = True
        request.participant_sid = join.participant.sid
        with pytest.raises(SignalConnectError, match="refused"):
            await connect(server.url, token("resumer"), join_request=request, legacy=legacy)
        # The running session was not touched.
        assert server.rooms.rooms["room"].participants["resumer"].sid == join.participant.sid
    finally:
        await first.close()


async def test_one_structured_log_line_per_event(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="kitewire.server")
    client, join = await connect(server.url, token("logger", can_publish=False), legacy=True)
    request = pb_rtc.SignalRequest()
    request.add_track.cid = "cam"
    request.add_track.type = pb_models.VIDEO
    await client.send(request)
    await next_of(client, "request_response")
    await client.close()
    with pytest.raises(SignalConnectError):
        await connect(server.url, create_token("devkey", "bad", identity="x", room="room"))
    await asyncio.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name == "kitewire.server"]
    joins = [line for line in lines if line.startswith("event=join ")]
    assert len(joins) == 1 and "identity=logger" in joins[0] and f"sid={join.participant.sid}" in joins[0]
    refusals = [line for line in lines if line.startswith("event=refused ")]
    assert any("request=add_track" in line for line in refusals)
    assert any("status=401" in line for line in refusals)
    leaves = [line for line in lines if line.startswith("event=leave ")]
    assert len(leaves) == 1 and "code=CLIENT_INITIATED" in leaves[0]


async def test_join_leave_cycles_leave_nothing_behind(server: Server) -> None:
    baseline_tasks = len(asyncio.all_tasks())
    for index in range(40):
        client, _ = await connect(server.url, token(f"cycler-{index % 3}", room=f"cycle-{index % 5}"), legacy=True)
        await client.close()
    for _ in range(50):
        if not server.rooms.rooms:
            break
        await asyncio.sleep(0.1)
    assert server.rooms.rooms == {}
    assert not server._handlers
    await asyncio.sleep(0.2)
    # Only the server's own ticker may remain beside the test's tasks.
    assert len(asyncio.all_tasks()) <= baseline_tasks + 1


async def test_hidden_participant_is_not_announced(server: Server) -> None:
    visible, _ = await connect(server.url, token("visible"), legacy=True)
    try:
        hidden, _ = await connect(server.url, token("recorder", hidden=True, can_publish=False), legacy=True)
        try:
            late, join_late = await connect(server.url, token("late"), legacy=True)
            try:
                assert [p.identity for p in join_late.other_participants] == ["visible"]
                assert join_late.room.num_participants == 2
            finally:
                await late.close()
            # visible heard about late (join and leave) but never about the recorder.
            identities: set[str] = set()
            for _ in range(2):
                update = await next_of(visible, "update")
                identities.update(p.identity for p in update.update.participants)
            assert identities == {"late"}
        finally:
            await hidden.close()
        with pytest.raises(asyncio.TimeoutError):
            await next_of(visible, "update", timeout=0.5)
    finally:
        await visible.close()


async def test_protobuf_json_in_text_frames_is_understood(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{server.url}/rtc", params={"access_token": token("jsonic")}) as ws:
            first = await ws.receive(timeout=5)
            assert pb_rtc.SignalResponse.FromString(first.data).WhichOneof("message") == "join"
            await ws.send_str('{"ping": "31337"}')
            while True:
                message = await ws.receive(timeout=5)
                assert message.type == aiohttp.WSMsgType.BINARY
                response = pb_rtc.SignalResponse.FromString(message.data)
                if response.WhichOneof("message") == "pong":
                    assert response.pong == 31337
                    break
            await ws.send_str("{not json")
            while True:
                message = await ws.receive(timeout=5)
                if message.type != aiohttp.WSMsgType.BINARY:
                    break
            assert message.type == aiohttp.WSMsgType.CLOSE and "JSON" in str(message.extra)


async def test_track_count_per_participant_is_bounded(server: Server) -> None:
    client, _ = await connect(server.url, token("hoarder"), legacy=True)
    try:
        for index in range(40):
            request = pb_rtc.SignalRequest()
            request.add_track.cid = f"cid-{index}"
            request.add_track.type = pb_models.VIDEO
            await client.send(request)
        published = refused = 0
        while published + refused < 40:
            message = await client.recv(timeout=5)
            assert message is not None
            kind = message.WhichOneof("message")
            if kind == "track_published":
                published += 1
            elif kind == "request_response":
                assert message.request_response.reason == pb_rtc.RequestResponse.LIMIT_EXCEEDED
                refused += 1
        assert (published, refused) == (32, 8)
        assert len(server.rooms.rooms["room"].participants["hoarder"].pending_tracks) == 32
    finally:
        await client.close()
