"""Every RoomService call through livekit-api's LiveKitAPI, with official-SDK clients seeing each effect as an event."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import kitewire
import pytest
from kitewire.server import Server
from livekit import api, rtc
from livekit.protocol import models as pb_models

from .conftest import KEY, SECRET, Connect, make_token
from .room_service_support import Events, admin_api
from .sdk_media import CounterPublisher, subscribed_tracks

pytestmark = pytest.mark.timeout(120)


async def test_rooms_are_created_listed_updated_and_deleted(server: Server, sdk_rooms: Connect) -> None:
    lkapi = admin_api(server)
    try:
        created = await lkapi.room.create_room(
            api.CreateRoomRequest(name="made", empty_timeout=30, max_participants=5, metadata="first")
        )
        assert (created.name, created.empty_timeout, created.max_participants, created.metadata) == (
            "made",
            30,
            5,
            "first",
        )
        assert created.sid.startswith("RM_")
        await lkapi.room.create_room(api.CreateRoomRequest(name="other", empty_timeout=30))
        everything = await lkapi.room.list_rooms(api.ListRoomsRequest())
        assert sorted(room.name for room in everything.rooms) == ["made", "other"]
        only = await lkapi.room.list_rooms(api.ListRoomsRequest(names=["made", "absent"]))
        assert [room.sid for room in only.rooms] == [created.sid]

        alice = await sdk_rooms("alice", "made")
        # The JoinResponse carries the room as CreateRoom made it.
        assert alice.metadata == "first"
        assert (await alice.sid) == created.sid
        events = Events(alice, "room_metadata_changed", "disconnected")

        updated = await lkapi.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="made", metadata="second"))
        assert updated.metadata == "second" and updated.num_participants == 1
        old, new = await events.next("room_metadata_changed")
        assert (old, new) == ("first", "second") and alice.metadata == "second"

        await lkapi.room.delete_room(api.DeleteRoomRequest(room="made"))
        (reason,) = await events.next("disconnected")
        assert reason == rtc.DisconnectReason.ROOM_DELETED
        left = await lkapi.room.list_rooms(api.ListRoomsRequest())
        assert [room.name for room in left.rooms] == ["other"]
    finally:
        await lkapi.aclose()


async def test_participants_are_listed_updated_and_removed(server: Server, sdk_rooms: Connect) -> None:
    alice = await sdk_rooms("alice", "team")
    bob = await sdk_rooms("bob", "team")
    bob_events = Events(
        bob,
        "participant_metadata_changed",
        "participant_attributes_changed",
        "participant_name_changed",
        "disconnected",
    )
    alice_events = Events(alice, "participant_metadata_changed", "participant_permissions_changed")
    lkapi = admin_api(server)
    try:
        listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="team"))
        assert sorted(p.identity for p in listed.participants) == ["alice", "bob"]
        got = await lkapi.room.get_participant(api.RoomParticipantIdentity(room="team", identity="alice"))
        assert got.sid == alice.local_participant.sid and got.kind == pb_models.ParticipantInfo.STANDARD

        info = await lkapi.room.update_participant(
            api.UpdateParticipantRequest(
                room="team", identity="alice", metadata="busy", name="Alice A.", attributes={"desk": "4"}
            )
        )
        assert (info.metadata, info.name, dict(info.attributes)) == ("busy", "Alice A.", {"desk": "4"})
        participant, _old, new = await bob_events.next("participant_metadata_changed")
        assert participant.identity == "alice" and new == "busy"
        changed, participant = await bob_events.next("participant_attributes_changed")
        assert changed == {"desk": "4"} and participant.identity == "alice"
        await bob_events.next("participant_name_changed")
        assert bob.remote_participants["alice"].name == "Alice A."
        # alice hears it about herself too.
        participant, _old, new = await alice_events.next("participant_metadata_changed")
        assert participant.identity == "alice" and new == "busy"

        # A permission change: alice may no longer publish data; her SDK sees it.
        permission = pb_models.ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=False)
        await lkapi.room.update_participant(
            api.UpdateParticipantRequest(room="team", identity="alice", permission=permission)
        )
        participant, permissions = await alice_events.until(
            "participant_permissions_changed", lambda p, perms: not perms.can_publish_data
        )
        assert participant.identity == "alice" and permissions.can_publish and not permissions.can_publish_data
        assert not server.rooms.rooms["team"].participants["alice"].grant.can_publish_data

        await lkapi.room.remove_participant(api.RoomParticipantIdentity(room="team", identity="bob"))
        (reason,) = await bob_events.next("disconnected")
        assert reason == rtc.DisconnectReason.PARTICIPANT_REMOVED
        listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="team"))
        assert [p.identity for p in listed.participants] == ["alice"]
    finally:
        await lkapi.aclose()


async def test_data_reaches_only_the_named_identities(server: Server, sdk_rooms: Connect) -> None:
    alice = await sdk_rooms("alice", "chat")
    bob = await sdk_rooms("bob", "chat")
    carol = await sdk_rooms("carol", "chat")
    received = {
        name: Events(room, "data_received") for name, room in (("alice", alice), ("bob", bob), ("carol", carol))
    }
    lkapi = admin_api(server)
    try:
        await lkapi.room.send_data(
            api.SendDataRequest(
                room="chat",
                data=b"for bob",
                kind=pb_models.DataPacket.RELIABLE,
                destination_identities=["bob"],
                topic="notes",
            )
        )
        (packet,) = await received["bob"].next("data_received")
        assert (packet.data, packet.topic, packet.participant) == (b"for bob", "notes", None)
        await lkapi.room.send_data(api.SendDataRequest(room="chat", data=b"for all", kind=pb_models.DataPacket.LOSSY))
        for name in ("alice", "bob", "carol"):
            (packet,) = await received[name].next("data_received")
            assert packet.data == b"for all", name
        # The first packet went to bob alone: everyone else's next packet was the broadcast.
        assert received["alice"].pending("data_received") == 0 and received["carol"].pending("data_received") == 0
    finally:
        await lkapi.aclose()


async def test_tracks_are_muted_unsubscribed_and_unpublished_by_the_server(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob", "media")
    tracks = subscribed_tracks(bob)
    bob_events = Events(bob, "track_muted", "track_subscribed", "track_unsubscribed", "track_unpublished")
    alice = await sdk_rooms("alice", "media")
    publisher = CounterPublisher(alice, 160, 120, simulcast=False, codec=rtc.VideoCodec.VP8)
    lkapi = admin_api(server)
    try:
        publication = await publisher.start()
        await asyncio.wait_for(tracks.get(), 15)
        muted = await lkapi.room.mute_published_track(
            api.MuteRoomTrackRequest(room="media", identity="alice", track_sid=publication.sid, muted=True)
        )
        assert muted.track.sid == publication.sid and muted.track.muted
        participant, remote = await bob_events.next("track_muted")
        assert participant.identity == "alice" and remote.sid == publication.sid and remote.muted
        # The publisher's SDK was told too: its own publication is muted.
        for _ in range(100):
            if publication.muted:
                break
            await asyncio.sleep(0.05)
        assert publication.muted

        # The server ends bob's subscription (the official SDK has no event for that; livekit's neither) ...
        room = server.rooms.rooms["media"]
        await lkapi.room.update_subscriptions(
            api.UpdateSubscriptionsRequest(room="media", identity="bob", track_sids=[publication.sid], subscribe=False)
        )
        assert publication.sid not in room.participants["bob"].subscriptions
        assert room.participants["alice"].published[publication.sid].downtracks == {}
        # ... and starts it again: bob's SDK gets the track anew.
        bob_events.clear("track_subscribed")
        await lkapi.room.update_subscriptions(
            api.UpdateSubscriptionsRequest(room="media", identity="bob", track_sids=[publication.sid], subscribe=True)
        )
        _track, remote, participant = await bob_events.next("track_subscribed")
        assert remote.sid == publication.sid and participant.identity == "alice"

        # Taking canSubscribe away ends bob's subscriptions; giving it back subscribes him again.
        bob_events.clear("track_subscribed")
        for can_subscribe in (False, True):
            permission = pb_models.ParticipantPermission(can_subscribe=can_subscribe, can_publish=True)
            await lkapi.room.update_participant(
                api.UpdateParticipantRequest(room="media", identity="bob", permission=permission)
            )
            if not can_subscribe:
                assert room.participants["bob"].subscriptions == {}
        _track, remote, participant = await bob_events.next("track_subscribed")
        assert remote.sid == publication.sid and publication.sid in room.participants["bob"].subscriptions

        # Taking canPublish away unpublishes alice's track: bob sees it unsubscribed and unpublished.
        bob_events.clear("track_unsubscribed")
        permission = pb_models.ParticipantPermission(can_subscribe=True, can_publish=False, can_publish_data=True)
        await lkapi.room.update_participant(
            api.UpdateParticipantRequest(room="media", identity="alice", permission=permission)
        )
        _track, remote, participant = await bob_events.next("track_unsubscribed")
        assert remote.sid == publication.sid and participant.identity == "alice"
        remote, participant = await bob_events.next("track_unpublished")
        assert remote.sid == publication.sid
        assert room.participants["alice"].published == {}
    finally:
        await publisher.stop()
        await lkapi.aclose()


async def test_kitewire_serve_answers_the_server_api() -> None:
    """The same calls against ``kitewire serve --dev`` in its own process, as a backend's CI would run it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kitewire",
        "serve",
        "--dev",
        "--port",
        "0",
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(kitewire.__file__).parents[1])},
    )
    sdk_room = rtc.Room()
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        found = re.search(r"ws://127\.0\.0\.1:\d+", line)
        assert found is not None, line
        url = found.group(0)
        lkapi = api.LiveKitAPI(url=url.replace("ws://", "http://"), api_key=KEY, api_secret=SECRET)
        try:
            await lkapi.room.create_room(api.CreateRoomRequest(name="ci", metadata="before", empty_timeout=30))
            await asyncio.wait_for(sdk_room.connect(url, make_token("tester", "ci")), 20)
            assert sdk_room.metadata == "before"
            events = Events(sdk_room, "room_metadata_changed", "disconnected")
            await lkapi.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="ci", metadata="after"))
            assert (await events.next("room_metadata_changed"))[1] == "after"
            listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="ci"))
            assert [p.identity for p in listed.participants] == ["tester"]
            await lkapi.room.delete_room(api.DeleteRoomRequest(room="ci"))
            assert (await events.next("disconnected"))[0] == rtc.DisconnectReason.ROOM_DELETED
            assert list((await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms) == []
        finally:
            await lkapi.aclose()
    finally:
        await sdk_room.disconnect()
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
