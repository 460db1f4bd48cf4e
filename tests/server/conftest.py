"""Fixtures for server tests: an embedded server per test, tokens, and
official-SDK rooms that are always disconnected, even when a test fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from kitewire.server import Server
from livekit import api, rtc

from .embedded import embedded_server
from .live_room import LiveRoom

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # livekit's dev secret "secret" is short on purpose; PyJWT warns on each token.
    if not hasattr(jwt, "InsecureKeyLengthWarning"):
        return
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning"))


KEY = "devkey"
SECRET = "secret"


def make_token(
    identity: str,
    room: str = "room",
    *,
    key: str = KEY,
    secret: str = SECRET,
    can_publish: bool = True,
    can_subscribe: bool = True,
    can_publish_data: bool = True,
    room_join: bool = True,
    can_update_own_metadata: bool = False,
) -> str:
    """A join token made with livekit-api, as a real application would."""
    grants = api.VideoGrants(
        room_join=room_join,
        room=room,
        can_publish=can_publish,
        can_subscribe=can_subscribe,
        can_publish_data=can_publish_data,
        can_update_own_metadata=can_update_own_metadata,
    )
    return api.AccessToken(key, secret).with_identity(identity).with_name(identity).with_grants(grants).to_jwt()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    logging.getLogger("kitewire.server").setLevel(logging.INFO)
    async with embedded_server() as srv:
        yield srv


# What the sdk_rooms fixture gives a test: ``await connect(identity, room=..., options=..., **token_options)``.
Connect = Callable[..., Awaitable[rtc.Room]]


@pytest.fixture
async def sdk_rooms(server: Server) -> AsyncIterator[Connect]:
    """``await connect(identity, room="room", **token_options)`` -> connected official-SDK Room."""
    rooms: list[rtc.Room] = []

    async def connect(
        identity: str, room: str = "room", *, options: rtc.RoomOptions | None = None, **token_options: Any
    ) -> rtc.Room:
        sdk_room = rtc.Room()
        rooms.append(sdk_room)
        token = make_token(identity, room, **token_options)
        await asyncio.wait_for(sdk_room.connect(server.url, token, options or rtc.RoomOptions()), 20)
        return sdk_room

    try:
        yield connect
    finally:
        for sdk_room in rooms:
            try:
                await asyncio.wait_for(sdk_room.disconnect(), 10)
            except Exception:
                pass


@pytest.fixture
async def live_room(sdk_rooms: Connect) -> AsyncIterator[LiveRoom]:
    """alice streams counters to bob in room "live" for the whole test (see ``live_room.LiveRoom``)."""
    live = LiveRoom()
    try:
        await live.start(sdk_rooms)
        yield live
    finally:
        await live.stop()
