"""Participants for the data-side tests: kitewire and official-SDK rooms in one kitewire server room,
tokens that may update their own metadata, and event recorders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kitewire import rtc
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET
from livekit import api
from livekit import rtc as lk

AnyRoom = rtc.Room | lk.Room


def metadata_token(identity: str, room: str) -> str:
    """A token for ``room`` that may publish, subscribe, send data and update its own metadata."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_update_own_metadata=True,
    )
    token = api.AccessToken(DEV_API_KEY, DEV_API_SECRET).with_identity(identity).with_name(identity)
    return token.with_grants(grants).to_jwt()


class Peers:
    """Connects kitewire (``kitewire``) and official (``official``) rooms; all are disconnected at the end."""

    def __init__(self, server: Server, room: str) -> None:
        self._server = server
        self._room = room
        self.rooms: list[AnyRoom] = []

    async def kitewire(self, identity: str, options: rtc.RoomOptions | None = None) -> rtc.Room:
        room = rtc.Room()
        self.rooms.append(room)
        token = metadata_token(identity, self._room)
        await asyncio.wait_for(room.connect(self._server.url, token, options or rtc.RoomOptions()), 20)
        return room

    async def official(self, identity: str, options: lk.RoomOptions | None = None) -> lk.Room:
        room = lk.Room()
        self.rooms.append(room)
        token = metadata_token(identity, self._room)
        await asyncio.wait_for(room.connect(self._server.url, token, options or lk.RoomOptions()), 20)
        return room

    async def join(self, kind: str, identity: str) -> Any:
        """A kitewire (``kind="kitewire"``) or official (``"official"``) room joined as ``identity``."""
        return await (self.kitewire(identity) if kind == "kitewire" else self.official(identity))

    async def pair(self, first: tuple[str, str], second: tuple[str, str]) -> tuple[Any, Any]:
        """Two rooms of the given (kind, identity), joined in that order, with data flowing both ways."""
        one = await self.join(*first)
        two = await self.join(*second)
        await warm_up([one, two])
        return one, two

    async def close(self) -> None:
        for room in self.rooms:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), 10)


@pytest.fixture
async def peers(server: Server, room_name: str) -> AsyncIterator[Peers]:
    together = Peers(server, room_name)
    try:
        yield together
    finally:
        await together.close()


def record(room: Any, event: str) -> asyncio.Queue[tuple[Any, ...]]:
    """Every emission of ``event`` on ``room``, as argument tuples."""
    queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    room.on(event, lambda *args: queue.put_nowait(args))
    return queue


async def until_delivered(send: Callable[[], Awaitable[object]], inbox: asyncio.Queue[Any], tries: int = 50) -> Any:
    """Send until the first copy lands (data channels open shortly after a join); returns it."""
    for _ in range(tries):
        await send()
        try:
            return await asyncio.wait_for(inbox.get(), 0.3)
        except TimeoutError:
            continue
    raise AssertionError("nothing was delivered")


def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    """What is in ``queue`` now."""
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def warm_up(rooms: list[Any], tries: int = 60) -> None:
    """Until every room has received a data packet from every other one: the data channels
    of a fresh join open shortly after it, and the server drops packets for a channel not yet open."""
    inboxes = {id(room): record(room, "data_received") for room in rooms}
    missing = {(id(sender), id(receiver)) for sender in rooms for receiver in rooms if sender is not receiver}
    identities = {room.local_participant.identity: id(room) for room in rooms}
    for _ in range(tries):
        for sender in rooms:
            if any(pair[0] == id(sender) for pair in missing):
                await sender.local_participant.publish_data(b"warm-up", topic="warm-up")
        await asyncio.sleep(0.2)
        for receiver in rooms:
            for (packet,) in drain(inboxes[id(receiver)]):
                if packet.participant is not None:
                    missing.discard((identities[packet.participant.identity], id(receiver)))
        if not missing:
            return
    raise AssertionError(f"{len(missing)} sender/receiver pairs never got data through")


async def until_present(room: Any, identity: str) -> Any:
    """The remote participant ``identity`` once ``room`` knows it."""
    for _ in range(200):
        if identity in room.remote_participants:
            return room.remote_participants[identity]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{identity} never appeared")
