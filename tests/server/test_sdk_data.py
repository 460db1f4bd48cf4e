"""User data packets between official-SDK clients, through both PeerConnection modes."""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect

pytestmark = pytest.mark.timeout(60)


def _collect(room: rtc.Room) -> asyncio.Queue[tuple[str, bytes, str]]:
    queue: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue()

    def on_data(packet: rtc.DataPacket) -> None:
        sender = packet.participant.identity if packet.participant is not None else ""
        queue.put_nowait((sender, bytes(packet.data), packet.topic or ""))

    room.on("data_received", on_data)
    return queue


async def test_data_reaches_everyone_or_only_the_destinations(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob", options=rtc.RoomOptions(single_peer_connection=True))
    carol = await sdk_rooms("carol", options=rtc.RoomOptions(single_peer_connection=False))
    bob_inbox, carol_inbox = _collect(bob), _collect(carol)
    alice = await sdk_rooms("alice")
    # Data channels open asynchronously after the join; retry the first message until it lands.
    for _ in range(50):
        await alice.local_participant.publish_data(b"hello", reliable=True, topic="greet")
        try:
            got = await asyncio.wait_for(bob_inbox.get(), 0.2)
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("bob never received data from alice")
    assert got == ("alice", b"hello", "greet")
    carol_got = await asyncio.wait_for(carol_inbox.get(), 5)
    assert carol_got == ("alice", b"hello", "greet")
    while not bob_inbox.empty():
        bob_inbox.get_nowait()
    while not carol_inbox.empty():
        carol_inbox.get_nowait()

    await alice.local_participant.publish_data(b"secret", reliable=True, destination_identities=["carol"])
    assert await asyncio.wait_for(carol_inbox.get(), 5) == ("alice", b"secret", "")
    await alice.local_participant.publish_data(b"lossy", reliable=False, topic="t")
    assert await asyncio.wait_for(bob_inbox.get(), 5) == ("alice", b"lossy", "t")
    assert await asyncio.wait_for(carol_inbox.get(), 5) == ("alice", b"lossy", "t")
    # bob never saw the message addressed to carol.
    assert bob_inbox.empty()


async def test_server_candidates_stay_on_loopback(server: Server, sdk_rooms: Connect) -> None:
    await sdk_rooms("single", options=rtc.RoomOptions(single_peer_connection=True))
    await sdk_rooms("dual", options=rtc.RoomOptions(single_peer_connection=False))
    descriptions = []
    for participant in server.rooms.rooms["room"].participants.values():
        for pc in (participant.publisher_pc, participant.subscriber_pc):
            if pc is not None and pc.local_description:
                descriptions.append(pc.local_description)
    assert len(descriptions) >= 2
    for sdp in descriptions:
        candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(line.split()[4] == "127.0.0.1" for line in candidates), candidates


async def test_data_from_a_participant_without_can_publish_data_is_dropped(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    inbox = _collect(bob)
    mute = await sdk_rooms("mute", can_publish_data=False)
    alice = await sdk_rooms("alice")
    # alice's data shows the channels are up; mute's never arrives.
    for _ in range(50):
        await mute.local_participant.publish_data(b"blocked", reliable=True)
        await alice.local_participant.publish_data(b"allowed", reliable=True)
        try:
            sender, payload, _ = await asyncio.wait_for(inbox.get(), 0.2)
        except TimeoutError:
            continue
        assert (sender, payload) == ("alice", b"allowed")
        break
    else:
        raise AssertionError("no data from alice either")
    await asyncio.sleep(0.5)
    while not inbox.empty():
        assert inbox.get_nowait()[0] == "alice"
