"""Data packets, DTMF and participant state between kitewire and the official SDK, both ways,
and kitewire to kitewire, through the kitewire server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from data_peers import Peers, drain, peers, record, until_delivered, until_present, warm_up
from kitewire import rtc
from kitewire.engine.data_channels import MAX_DATA_PACKET_BYTES
from livekit import rtc as lk

__all__ = ["peers"]

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")]


def _summary(packet: Any) -> tuple[str, bytes, str | None, int]:
    sender = packet.participant.identity if packet.participant is not None else ""
    return sender, bytes(packet.data), packet.topic, int(packet.kind)


@pytest.mark.parametrize("single_pc", [True, False], ids=["v1", "legacy"])
async def test_data_with_topics_and_destinations_both_ways(peers: Peers, single_pc: bool) -> None:
    kite = await peers.kitewire("kite", rtc.RoomOptions(single_peer_connection=single_pc))
    official = await peers.official("official")
    other = await peers.kitewire("other")
    await warm_up([kite, official, other])
    at_kite, at_official, at_other = (record(room, "data_received") for room in (kite, official, other))

    # kitewire -> everyone
    await kite.local_participant.publish_data(b"hi", topic="greet")
    got = await asyncio.wait_for(at_official.get(), 10)
    assert _summary(got[0]) == ("kite", b"hi", "greet", lk.DataPacketKind.KIND_RELIABLE)
    assert isinstance(got[0], lk.DataPacket)
    assert _summary((await asyncio.wait_for(at_other.get(), 10))[0]) == ("kite", b"hi", "greet", 1)
    drain(at_official), drain(at_other)

    # official -> kitewire, reliable and lossy
    await official.local_participant.publish_data(b"back", topic="t")
    packet = (await asyncio.wait_for(at_kite.get(), 10))[0]
    assert isinstance(packet, rtc.DataPacket)
    assert _summary(packet) == ("official", b"back", "t", rtc.DataPacketKind.KIND_RELIABLE)
    assert packet.participant is kite.remote_participants["official"]
    # "other" gets each broadcast too (waited for, so that it cannot arrive after a drain)
    assert _summary((await asyncio.wait_for(at_other.get(), 10))[0])[:2] == ("official", b"back")
    drain(at_kite), drain(at_other)
    await official.local_participant.publish_data("text", reliable=False)
    lossy = (await asyncio.wait_for(at_kite.get(), 10))[0]
    assert (lossy.data, lossy.kind) == (b"text", rtc.DataPacketKind.KIND_LOSSY)
    assert _summary((await asyncio.wait_for(at_other.get(), 10))[0])[:2] == ("official", b"text")

    # destinations: only "other" gets it
    drain(at_other), drain(at_kite)
    await kite.local_participant.publish_data(b"private", destination_identities=["other"])
    assert _summary((await asyncio.wait_for(at_other.get(), 10))[0])[:2] == ("kite", b"private")
    await official.local_participant.publish_data(b"for kite", destination_identities=["kite"])
    assert _summary((await asyncio.wait_for(at_kite.get(), 10))[0])[:2] == ("official", b"for kite")
    await asyncio.sleep(0.5)
    assert drain(at_official) == []
    assert all(_summary(args[0])[1] != b"for kite" for args in drain(at_other))


async def test_an_oversized_packet_is_refused_and_the_room_keeps_working(peers: Peers) -> None:
    kite = await peers.kitewire("kite")
    official = await peers.official("official")
    inbox = record(official, "data_received")
    await until_delivered(lambda: kite.local_participant.publish_data(b"warm"), inbox)
    with pytest.raises(ValueError, match=f"at most {MAX_DATA_PACKET_BYTES} bytes"):
        await kite.local_participant.publish_data(b"x" * (MAX_DATA_PACKET_BYTES + 1))
    with pytest.raises(ValueError, match="bytes or str"):
        not_bytes: Any = 12
        await kite.local_participant.publish_data(not_bytes)
    drain(inbox)
    await kite.local_participant.publish_data(b"y" * 50_000)
    assert bytes((await asyncio.wait_for(inbox.get(), 10))[0].data) == b"y" * 50_000


async def test_dtmf_both_ways(peers: Peers) -> None:
    kite = await peers.kitewire("kite")
    official = await peers.official("official")
    at_kite, at_official = record(kite, "sip_dtmf_received"), record(official, "sip_dtmf_received")
    got = await until_delivered(lambda: kite.local_participant.publish_dtmf(code=3, digit="3"), at_official)
    assert (got[0].code, got[0].digit, got[0].participant.identity) == (3, "3", "kite")
    got = await until_delivered(lambda: official.local_participant.publish_dtmf(code=11, digit="#"), at_kite)
    dtmf = got[0]
    assert isinstance(dtmf, rtc.SipDTMF)
    assert (dtmf.code, dtmf.digit, dtmf.participant.identity if dtmf.participant else None) == (11, "#", "official")


@pytest.mark.parametrize("actor_kind", ["kitewire", "official"])
async def test_metadata_name_and_attributes_events(peers: Peers, actor_kind: str) -> None:
    kite_watcher = await peers.kitewire("kite-watcher")
    official_watcher = await peers.official("official-watcher")
    actor = await (peers.kitewire("actor") if actor_kind == "kitewire" else peers.official("actor"))
    watchers = (kite_watcher, official_watcher)
    # a change made before a watcher knows the actor arrives as the actor's first state, not as an event
    for room in watchers:
        await until_present(room, "actor")
    metadata = [record(room, "participant_metadata_changed") for room in watchers]
    names = [record(room, "participant_name_changed") for room in watchers]
    attributes = [record(room, "participant_attributes_changed") for room in watchers]
    own_metadata = record(actor, "participant_metadata_changed")

    local: Any = actor.local_participant
    await asyncio.wait_for(local.set_metadata("m1"), 3)
    await asyncio.wait_for(local.set_name("New Name"), 3)
    await asyncio.wait_for(local.set_attributes({"a": "1", "b": "2"}), 3)
    await asyncio.wait_for(local.set_attributes({"a": "3"}), 3)
    for queue in metadata:
        participant, old, new = await asyncio.wait_for(queue.get(), 10)
        assert (participant.identity, old, new) == ("actor", "", "m1")
    for queue in names:
        participant, old, new = await asyncio.wait_for(queue.get(), 10)
        assert (participant.identity, old, new) == ("actor", "actor", "New Name")
    for queue in attributes:
        first, participant = await asyncio.wait_for(queue.get(), 10)
        second, _ = await asyncio.wait_for(queue.get(), 10)
        assert participant.identity == "actor"
        assert (first, second) == ({"a": "1", "b": "2"}, {"a": "3"})
    assert kite_watcher.remote_participants["actor"].attributes == {"a": "3", "b": "2"}
    assert kite_watcher.remote_participants["actor"].name == "New Name"
    participant, _, new = await asyncio.wait_for(own_metadata.get(), 10)
    assert (participant.identity, new) == ("actor", "m1")
    assert actor.local_participant.metadata == "m1"


async def test_a_refused_update_raises_at_once(peers: Peers, server: Any, room_name: str) -> None:
    from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

    room = rtc.Room()
    peers.rooms.append(room)
    # create_token grants no canUpdateOwnMetadata
    await room.connect(server.url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="plain", room=room_name))
    with pytest.raises(RuntimeError, match="refused.*NOT_ALLOWED"):
        await asyncio.wait_for(room.local_participant.set_metadata("nope"), 3)
    assert room.local_participant.metadata == ""


async def test_official_oversized_packets_are_refused_by_the_negotiated_size(peers: Peers) -> None:
    kite = await peers.kitewire("kite")
    official = await peers.official("official")
    await warm_up([kite, official])
    inbox = record(kite, "data_received")
    # the largest packet kitewire itself sends also arrives from the official SDK
    await official.local_participant.publish_data(b"a" * MAX_DATA_PACKET_BYTES)
    assert len((await asyncio.wait_for(inbox.get(), 10))[0].data) == MAX_DATA_PACKET_BYTES
    with pytest.raises(lk.participant.PublishDataError, match="maximum message size"):
        await official.local_participant.publish_data(b"b" * 100_000)
    await official.local_participant.publish_data(b"after")
    assert (await asyncio.wait_for(inbox.get(), 10))[0].data == b"after"


async def test_publish_data_checks_its_arguments(peers: Peers) -> None:
    kite = await peers.kitewire("kite")
    local = kite.local_participant
    not_a_list: Any = "bob"
    with pytest.raises(ValueError, match="destination_identities"):
        await local.publish_data(b"x", destination_identities=not_a_list)
    not_str: Any = [1]
    with pytest.raises(ValueError, match="destination_identities"):
        await local.publish_data(b"x", destination_identities=not_str)
    with pytest.raises(ValueError, match="topic"):
        await local.publish_data(b"x", topic=not_str)
