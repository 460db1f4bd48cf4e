"""Room state a LiveKit app sees: max_participants, empty/departure timeouts, the token's roomConfig, kind and
attributes, and subscription permissions the server enforces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kitewire.server import Server, ServerConfig
from kitewire.server.limits import MAX_PERMISSION_ENTRIES
from kitewire.server.subscription_permissions import SubscriptionPermissions
from kitewire.signal import connect, create_token
from livekit import api, rtc
from livekit.protocol import room as pb_room
from livekit.protocol import rtc as pb_rtc

from .conftest import KEY, SECRET, Connect
from .room_service_support import Events, admin_api
from .sdk_media import CounterPublisher, CounterReader, subscribed_tracks

pytestmark = pytest.mark.timeout(120)


def _token(identity: str, room: str, *, kind: str = "", **claims: Any) -> str:
    token = api.AccessToken(KEY, SECRET).with_identity(identity).with_name(identity)
    token = token.with_grants(api.VideoGrants(room_join=True, room=room))
    if kind:
        token.claims.kind = kind
    if "attributes" in claims:
        token = token.with_attributes(claims["attributes"])
    if "room_config" in claims:
        token = token.with_room_config(claims["room_config"])
    return token.to_jwt()


@pytest.fixture
async def joined(server: Server) -> AsyncIterator[Any]:
    """``await join(token)`` -> a connected official-SDK Room; ``await refused(token)`` -> the SDK's error text."""
    rooms: list[rtc.Room] = []

    class Joiner:
        async def join(self, token: str) -> rtc.Room:
            room = rtc.Room()
            rooms.append(room)
            await asyncio.wait_for(room.connect(server.url, token), 20)
            return room

        async def refused(self, token: str) -> str:
            room = rtc.Room()
            rooms.append(room)
            with pytest.raises(Exception) as info:
                await asyncio.wait_for(room.connect(server.url, token), 20)
            return str(info.value)

    try:
        yield Joiner()
    finally:
        for room in rooms:
            try:
                await asyncio.wait_for(room.disconnect(), 10)
            except Exception:
                pass


async def _eventually(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


async def test_a_join_over_max_participants_is_refused_with_the_reason(server: Server, joined: Any) -> None:
    lkapi = admin_api(server)
    try:
        await lkapi.room.create_room(api.CreateRoomRequest(name="small", max_participants=2, empty_timeout=30))
    finally:
        await lkapi.aclose()
    await joined.join(_token("alice", "small"))
    await joined.join(_token("bob", "small"))
    reason = await joined.refused(_token("carol", "small"))
    assert "full" in reason and "max_participants" in reason, reason
    # Agents do not count (livekit's rule); a rejoin of someone inside replaces its session.
    agent = await joined.join(_token("helper", "small", kind="agent"))
    assert agent.local_participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    await joined.join(_token("bob", "small"))
    assert sorted(server.rooms.rooms["small"].participants) == ["alice", "bob", "helper"]


async def test_the_tokens_room_config_sets_metadata_and_limits(server: Server, joined: Any) -> None:
    config = pb_room.RoomConfiguration(name="configured", metadata="from the token", max_participants=1)
    first = await joined.join(_token("alice", "configured", room_config=config))
    assert first.metadata == "from the token"
    room = server.rooms.rooms["configured"]
    assert (room.metadata, room.max_participants) == ("from the token", 1)
    reason = await joined.refused(_token("bob", "configured"))
    assert "full" in reason, reason


async def test_kinds_and_attributes_come_from_the_token(server: Server, joined: Any) -> None:
    viewer = await joined.join(_token("viewer", "kinds"))
    await joined.join(_token("caller", "kinds", kind="sip", attributes={"phone": "+100", "line": "2"}))
    assert await _eventually(lambda: "caller" in viewer.remote_participants)
    caller = viewer.remote_participants["caller"]
    assert caller.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    assert caller.attributes == {"phone": "+100", "line": "2"}
    reason = await joined.refused(_token("odd", "kinds", kind="robot"))
    assert "kind" in reason and "robot" in reason, reason


async def test_empty_and_departure_timeouts_are_honoured(server: Server, joined: Any) -> None:
    lkapi = admin_api(server)
    try:
        # The embedded server closes empty rooms after 0.5 s; these rooms set their own timeouts.
        await lkapi.room.create_room(api.CreateRoomRequest(name="waiting", empty_timeout=60))
        await lkapi.room.create_room(api.CreateRoomRequest(name="brief", empty_timeout=1))
        await lkapi.room.create_room(api.CreateRoomRequest(name="lingering", empty_timeout=60, departure_timeout=2))
        assert await _eventually(lambda: "brief" not in server.rooms.rooms)
        await asyncio.sleep(1.0)
        names = {room.name for room in (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms}
        assert names == {"waiting", "lingering"}

        visitor = await joined.join(_token("visitor", "lingering"))
        await visitor.disconnect()
        left_at = time.monotonic()
        assert await _eventually(lambda: "visitor" not in server.rooms.rooms["lingering"].participants)
        # Gone after its departure timeout (2 s), not after the empty timeout (60 s) nor the server's (0.5 s).
        assert await _eventually(lambda: "lingering" not in server.rooms.rooms)
        assert time.monotonic() - left_at >= 1.5
        assert "waiting" in server.rooms.rooms
    finally:
        await lkapi.aclose()


async def test_subscription_permissions_are_enforced(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob", "private")
    bob_tracks = subscribed_tracks(bob)
    alice = await sdk_rooms("alice", "private")
    publisher = CounterPublisher(alice, 160, 120, simulcast=False, codec=rtc.VideoCodec.VP8)
    reader: CounterReader | None = None
    try:
        publication = await publisher.start()
        reader = CounterReader(await asyncio.wait_for(bob_tracks.get(), 15))
        await asyncio.wait_for(reader.first_frame.wait(), 15)
        room = server.rooms.rooms["private"]
        track = room.participants["alice"].published[publication.sid]

        # Nobody may subscribe: bob's subscription ends and his frames stop.
        alice.local_participant.set_track_subscription_permissions(allow_all_participants=False)
        assert await _eventually(lambda: track.downtracks == {})
        assert publication.sid not in room.participants["bob"].subscriptions
        await asyncio.sleep(0.5)
        frames = len(reader.counters)
        await asyncio.sleep(1.5)
        assert len(reader.counters) == frames, "bob still receives frames he is not allowed"
        await reader.close()
        reader = None

        # A newcomer is not subscribed either.
        carol = await sdk_rooms("carol", "private")
        await asyncio.sleep(1.0)
        assert publication.sid not in room.participants["carol"].subscriptions

        # bob alone is allowed again: the server subscribes him and his SDK gets the track anew.
        bob_events = Events(bob, "track_subscribed")
        allow_bob = rtc.ParticipantTrackPermission(participant_identity="bob", allow_all=True)
        alice.local_participant.set_track_subscription_permissions(
            allow_all_participants=False, participant_permissions=[allow_bob]
        )
        _track, remote, participant = await bob_events.next("track_subscribed")
        assert remote.sid == publication.sid and participant.identity == "alice"
        reader = CounterReader(_track)
        await asyncio.wait_for(reader.first_frame.wait(), 15)
        assert publication.sid not in room.participants["carol"].subscriptions
        assert sorted(d.subscriber.identity for d in track.downtracks.values()) == ["bob"]
        assert carol.remote_participants["alice"].track_publications[publication.sid].track is None
    finally:
        if reader is not None:
            await reader.close()
        await publisher.stop()


def test_the_permission_rule_by_identity_sid_and_track() -> None:
    rule = SubscriptionPermissions()
    assert rule.allows("anyone", "PA_x", "TR_a")
    request = pb_rtc.SubscriptionPermission(all_participants=False)
    request.track_permissions.add(participant_identity="bob", all_tracks=True)
    request.track_permissions.add(participant_sid="PA_carol", track_sids=["TR_a"])
    rule.replace(request)
    assert rule.allows("bob", "PA_bob", "TR_b")
    assert rule.allows("carol", "PA_carol", "TR_a") and not rule.allows("carol", "PA_carol", "TR_b")
    assert not rule.allows("dave", "PA_dave", "TR_a")
    rule.replace(pb_rtc.SubscriptionPermission(all_participants=True))
    assert rule.allows("dave", "PA_dave", "TR_a")


async def test_an_unbounded_permission_request_is_refused(server: Server) -> None:
    client, _ = await connect(server.url, create_token(KEY, SECRET, identity="greedy", room="perm"))
    try:
        request = pb_rtc.SignalRequest()
        request.subscription_permission.all_participants = False
        for index in range(MAX_PERMISSION_ENTRIES + 1):
            request.subscription_permission.track_permissions.add(participant_identity=f"p{index}", all_tracks=True)
        await client.send(request)
        refusal = None
        while refusal is None:
            message = await client.recv(timeout=5)
            assert message is not None
            if message.WhichOneof("message") == "request_response":
                refusal = message.request_response
        assert refusal.reason == pb_rtc.RequestResponse.LIMIT_EXCEEDED and "participants" in refusal.message
        # The rule did not change: everyone may still subscribe.
        assert server.rooms.rooms["perm"].participants["greedy"].subscription_permissions.all_participants
    finally:
        await client.close()


async def test_room_defaults_from_the_config_file_apply_to_every_room() -> None:
    config = ServerConfig.dev(port=0)
    warnings = config.load_yaml_text("room:\n  empty_timeout: 30\n  departure_timeout: 1\n  max_participants: 1\n")
    assert warnings == []
    rooms: list[rtc.Room] = []
    async with Server(config) as server:
        try:
            first = rtc.Room()
            rooms.append(first)
            await asyncio.wait_for(first.connect(server.url, _token("alice", "defaults")), 20)
            second = rtc.Room()
            rooms.append(second)
            with pytest.raises(Exception, match="full"):
                await asyncio.wait_for(second.connect(server.url, _token("bob", "defaults")), 20)
            # the token's roomConfig still overrides the server's default
            roomy = pb_room.RoomConfiguration(name="roomy", max_participants=2)
            for identity in ("carol", "dave"):
                room = rtc.Room()
                rooms.append(room)
                await asyncio.wait_for(room.connect(server.url, _token(identity, "roomy", room_config=roomy)), 20)
            await first.disconnect()
            left_at = time.monotonic()
            # gone after the configured departure timeout (1 s), not the empty timeout (30 s)
            assert await _eventually(lambda: "defaults" not in server.rooms.rooms, timeout=10)
            assert 0.5 <= time.monotonic() - left_at < 10
        finally:
            for room in rooms:
                try:
                    await asyncio.wait_for(room.disconnect(), 10)
                except Exception:
                    pass
