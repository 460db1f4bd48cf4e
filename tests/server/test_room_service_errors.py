"""Each refused server-API call answers a Twirp error: JSON ``{"code", "msg"}`` with the code's HTTP status."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from google.protobuf.message import Message
from kitewire.server import Server
from kitewire.server.limits import MAX_METADATA_BYTES, MAX_TWIRP_BODY_BYTES
from kitewire.server.room_service import ROOM_SERVICE
from kitewire.server.twirp import TWIRP_STATUS, TwirpError
from kitewire.signal.token import AccessClaims
from livekit import api
from livekit.protocol import agent_dispatch as pb_agent_dispatch
from livekit.protocol import egress as pb_egress
from livekit.protocol import ingress as pb_ingress
from livekit.protocol import sip as pb_sip

from .conftest import Connect
from .room_service_support import admin_api, api_token

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def lkapi(server: Server) -> AsyncIterator[api.LiveKitAPI]:
    client = admin_api(server)
    try:
        yield client
    finally:
        await client.aclose()


async def _refused(call: Awaitable[Any]) -> api.TwirpError:
    with pytest.raises(api.TwirpError) as info:
        await call
    return info.value


async def _post(
    server: Server, route: str, body: bytes, *, content_type: str = "application/protobuf", token: str | None = None
) -> tuple[int, dict[str, Any] | bytes, str]:
    """POST ``body`` to ``/twirp/<route>``; the status, the decoded JSON (or raw body) and the content type."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.http_url}/twirp/{route}", data=body, headers=headers) as response:
            raw = await response.read()
            kind = response.headers.get("Content-Type", "")
            if kind.startswith("application/json"):
                decoded: dict[str, Any] = json.loads(raw)
                return response.status, decoded, kind
            return response.status, raw, kind


def _admin(room: str) -> str:
    return api_token(room_admin=True, room=room, room_create=True, room_list=True)


def test_the_twirp_code_table_and_its_errors() -> None:
    assert TwirpError("not_found", "x").status == 404
    assert TwirpError("permission_denied", "x").status == 403
    assert TwirpError("unauthenticated", "x").status == 401
    assert TwirpError("invalid_argument", "x").status == 400
    assert TwirpError("unimplemented", "x").status == 501
    assert len(TWIRP_STATUS) == 18
    with pytest.raises(ValueError, match="expected a Twirp code"):
        TwirpError("nope", "x")


async def test_calls_without_the_grant_are_refused(server: Server) -> None:
    cases: list[tuple[str, Callable[[api.LiveKitAPI], Awaitable[Any]]]] = [
        ("roomCreate", lambda c: c.room.create_room(api.CreateRoomRequest(name="r"))),
        ("roomCreate", lambda c: c.room.delete_room(api.DeleteRoomRequest(room="r"))),
        ("roomList", lambda c: c.room.list_rooms(api.ListRoomsRequest())),
        ("roomAdmin", lambda c: c.room.list_participants(api.ListParticipantsRequest(room="r"))),
        ("roomAdmin", lambda c: c.room.send_data(api.SendDataRequest(room="r", data=b"x"))),
    ]
    # A join token grants none of them.
    client = api.LiveKitAPI.with_token(api_token(room_join=True, room="r"), server.http_url)
    try:
        for grant, call in cases:
            error = await _refused(call(client))
            assert (error.code, error.status) == ("permission_denied", 403), error
            assert grant in error.message
    finally:
        await client.aclose()
    # roomAdmin for another room is not roomAdmin for this one.
    client = api.LiveKitAPI.with_token(api_token(room_admin=True, room="other"), server.http_url)
    try:
        error = await _refused(client.room.get_participant(api.RoomParticipantIdentity(room="r", identity="a")))
        assert (error.code, error.status) == ("permission_denied", 403) and "'other'" in error.message
    finally:
        await client.aclose()


async def test_missing_or_bad_tokens_are_unauthenticated(server: Server) -> None:
    body = api.ListRoomsRequest().SerializeToString()
    status, answer, kind = await _post(server, "livekit.RoomService/ListRooms", body)
    assert status == 401 and kind.startswith("application/json")
    assert isinstance(answer, dict) and answer["code"] == "unauthenticated" and "Authorization" in answer["msg"]
    forged = api.AccessToken("devkey", "not-the-secret").with_grants(api.VideoGrants(room_list=True)).to_jwt()
    status, answer, _ = await _post(server, "livekit.RoomService/ListRooms", body, token=forged)
    assert status == 401 and isinstance(answer, dict) and answer["code"] == "unauthenticated"
    assert "signature" in answer["msg"]
    unknown_key = api.AccessToken("nobody", "secret").with_grants(api.VideoGrants(room_list=True)).to_jwt()
    status, answer, _ = await _post(server, "livekit.RoomService/ListRooms", body, token=unknown_key)
    assert status == 401 and isinstance(answer, dict) and "unknown API key" in answer["msg"]


async def test_unknown_rooms_and_participants_are_not_found(
    server: Server, sdk_rooms: Connect, lkapi: api.LiveKitAPI
) -> None:
    await sdk_rooms("alice", "here")
    calls: list[Awaitable[Any]] = [
        lkapi.room.delete_room(api.DeleteRoomRequest(room="nowhere")),
        lkapi.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="nowhere", metadata="m")),
        lkapi.room.send_data(api.SendDataRequest(room="nowhere", data=b"x")),
        lkapi.room.get_participant(api.RoomParticipantIdentity(room="here", identity="nobody")),
        lkapi.room.remove_participant(api.RoomParticipantIdentity(room="here", identity="nobody")),
        lkapi.room.update_participant(api.UpdateParticipantRequest(room="here", identity="nobody", metadata="m")),
        lkapi.room.mute_published_track(
            api.MuteRoomTrackRequest(room="here", identity="nobody", track_sid="TR_x", muted=True)
        ),
        lkapi.room.update_subscriptions(api.UpdateSubscriptionsRequest(room="here", identity="nobody")),
        lkapi.room.mute_published_track(
            api.MuteRoomTrackRequest(room="here", identity="alice", track_sid="TR_none", muted=True)
        ),
    ]
    for call in calls:
        error = await _refused(call)
        assert (error.code, error.status) == ("not_found", 404), error
        assert "does not exist" in error.message or "not found" in error.message
    # A room that is not open has no participants, as livekit-server answers.
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="nowhere"))
    assert list(listed.participants) == []


async def test_bad_arguments_are_invalid(server: Server, sdk_rooms: Connect, lkapi: api.LiveKitAPI) -> None:
    await sdk_rooms("alice", "here")
    too_long = "m" * (MAX_METADATA_BYTES + 1)
    cases: list[tuple[Awaitable[Any], str]] = [
        (lkapi.room.create_room(api.CreateRoomRequest(name="")), "no room name"),
        (lkapi.room.create_room(api.CreateRoomRequest(name="r", metadata=too_long)), "metadata"),
        (lkapi.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="here", metadata=too_long)), "metadata"),
        (
            lkapi.room.update_participant(api.UpdateParticipantRequest(room="here", identity="alice", name="n" * 300)),
            "name",
        ),
        (lkapi.room.get_participant(api.RoomParticipantIdentity(room="here", identity="")), "identity"),
        (lkapi.room.send_data(api.SendDataRequest(room="here", data=b"x" * 70_000)), "data"),
    ]
    for call, word in cases:
        error = await _refused(call)
        assert (error.code, error.status) == ("invalid_argument", 400), error
        assert word in error.message
    # livekit-api always sends a 16-byte nonce; another client may not.
    bad_nonce = api.SendDataRequest(room="here", data=b"x", nonce=b"abc").SerializeToString()
    status, answer, _ = await _post(server, "livekit.RoomService/SendData", bad_nonce, token=_admin("here"))
    assert status == 400 and isinstance(answer, dict) and answer["code"] == "invalid_argument"
    assert "nonce" in answer["msg"]
    error = await _refused(
        lkapi.room.mute_published_track(
            api.MuteRoomTrackRequest(room="here", identity="alice", track_sid="TR_x", muted=False)
        )
    )
    assert (error.code, error.status, error.message) == ("failed_precondition", 412, "remote unmute not enabled")
    # Nothing of the refused calls took effect.
    assert server.rooms.rooms["here"].participants["alice"].name == "alice"
    assert "r" not in server.rooms.rooms


async def test_other_livekit_services_answer_unimplemented_by_name(server: Server, lkapi: api.LiveKitAPI) -> None:
    egress = await _refused(lkapi.egress.list_egress(pb_egress.ListEgressRequest()))
    ingress = await _refused(lkapi.ingress.list_ingress(pb_ingress.ListIngressRequest()))
    sip = await _refused(lkapi.sip.list_inbound_trunk(pb_sip.ListSIPInboundTrunkRequest()))
    forward = await _refused(
        lkapi.room.forward_participant(api.ForwardParticipantRequest(room="a", identity="x", destination_room="b"))
    )
    for error, name in ((egress, "livekit.Egress/"), (ingress, "livekit.Ingress/"), (sip, "livekit.SIP/")):
        assert (error.code, error.status) == ("unimplemented", 501), error
        assert name in error.message and "not implemented" in error.message
    assert forward.code == "unimplemented" and "livekit.RoomService/ForwardParticipant" in forward.message


async def test_json_bodies_are_answered_in_json(server: Server) -> None:
    token = _admin("jsonroom")
    # protobuf JSON: either field naming, unknown fields ignored.
    body = json.dumps({"name": "jsonroom", "emptyTimeout": 40, "metadata": "j", "someFutureField": 1}).encode()
    status, answer, kind = await _post(
        server, "livekit.RoomService/CreateRoom", body, content_type="application/json", token=token
    )
    assert status == 200 and kind.startswith("application/json"), answer
    assert isinstance(answer, dict)
    assert (answer["name"], answer["empty_timeout"], answer["metadata"]) == ("jsonroom", 40, "j")
    assert answer["sid"].startswith("RM_")
    body = json.dumps({"room": "jsonroom", "metadata": "k"}).encode()
    status, answer, _ = await _post(
        server, "livekit.RoomService/UpdateRoomMetadata", body, content_type="application/json", token=token
    )
    assert status == 200 and isinstance(answer, dict) and answer["metadata"] == "k"
    assert server.rooms.rooms["jsonroom"].metadata == "k"


async def test_bad_routes_types_and_bodies_get_twirp_errors(server: Server) -> None:
    token = _admin("r")
    valid = api.ListRoomsRequest().SerializeToString()
    cases: list[tuple[str, bytes, str, str, int]] = [
        ("livekit.RoomService/NoSuchMethod", valid, "application/protobuf", "bad_route", 404),
        ("livekit.NoSuchService/ListRooms", valid, "application/protobuf", "bad_route", 404),
        ("livekit.RoomService/ListRooms", valid, "text/plain", "bad_route", 404),
        ("livekit.RoomService/ListRooms", b"\xff\xff\xff\xff", "application/protobuf", "malformed", 400),
        ("livekit.RoomService/ListRooms", b"{not json", "application/json", "malformed", 400),
        ("livekit.RoomService/ListRooms", b'{"names": 5}', "application/json", "malformed", 400),
        ("livekit.RoomService/ListRooms", b"\xc3\x28", "application/json", "malformed", 400),
    ]
    for route, body, content_type, code, status in cases:
        got_status, answer, _ = await _post(server, route, body, content_type=content_type, token=token)
        assert isinstance(answer, dict), (route, answer)
        assert (got_status, answer["code"]) == (status, code), (route, content_type, answer)
        assert answer["msg"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.http_url}/twirp/livekit.RoomService/ListRooms") as response:
            assert response.status == 404
            assert (await response.json())["code"] == "bad_route"


async def test_oversized_bodies_are_refused_unread(server: Server) -> None:
    token = _admin("r")
    huge = b"\x00" * (MAX_TWIRP_BODY_BYTES + 1)
    status, answer, _ = await _post(server, "livekit.RoomService/ListRooms", huge, token=token)
    assert status == 400 and isinstance(answer, dict) and answer["code"] == "invalid_argument"
    assert str(MAX_TWIRP_BODY_BYTES) in answer["msg"]

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the bound holds while reading.
        for _ in range(MAX_TWIRP_BODY_BYTES // 65536 + 2):
            yield b"\x00" * 65536

    headers = {"Content-Type": "application/protobuf", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        url = f"{server.http_url}/twirp/livekit.RoomService/ListRooms"
        try:
            async with session.post(url, data=chunks(), headers=headers) as response:
                assert response.status == 400
                assert (await response.json())["code"] == "invalid_argument"
        except aiohttp.ClientError:
            # The server may answer and close before the client has sent all of it.
            pass
    # The server still serves.
    status, answer, _ = await _post(server, "livekit.RoomService/ListRooms", b"", token=token)
    assert status == 200 and answer == b""


async def test_a_service_is_added_with_one_call(server: Server, lkapi: api.LiveKitAPI) -> None:
    """How the agent dispatch service plugs in: its descriptor and a handler per method (server/agents)."""
    service = pb_agent_dispatch.DESCRIPTOR.services_by_name["AgentDispatchService"]
    assert service.full_name in server.twirp.services
    # the server's own AgentDispatchService answers through the router, with its auth
    assert await lkapi.agent_dispatch.list_dispatch("somewhere") == []
    with pytest.raises(ValueError, match="twice"):
        server.twirp.add_service(service, {})

    async def unused(request: pb_agent_dispatch.ListAgentDispatchRequest, claims: AccessClaims) -> Message:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="method names"):
        server.twirp.add_service(ROOM_SERVICE, {"NoSuchMethod": unused})
