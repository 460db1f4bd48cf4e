"""Fixtures for tests that go through a kitewire server: the server and room helpers."""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from kitewire import rtc
from kitewire.frames import VideoFrame
from kitewire.media import VideoDecoder, VideoEncoder
from kitewire.server import Server, ServerConfig
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from rtc_thread_spy import CpuWorkThreads

_room_numbers = itertools.count(1)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server(ServerConfig.dev(port=0, log_level="warning")) as running:
        yield running


def token_for(identity: str, room: str) -> str:
    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)


@pytest.fixture
def room_name() -> str:
    return f"room-{next(_room_numbers)}"


RoomFactory = Callable[[str], Awaitable[rtc.Room]]


@pytest.fixture
async def connect_room(server: Server, room_name: str) -> AsyncIterator[RoomFactory]:
    """Connect kitewire Rooms as participants; all are disconnected at teardown."""
    rooms: list[rtc.Room] = []

    async def connect(identity: str, options: rtc.RoomOptions | None = None) -> rtc.Room:
        room = rtc.Room()
        rooms.append(room)
        await room.connect(server.url, token_for(identity, room_name), options or rtc.RoomOptions())
        return room

    try:
        yield connect
    finally:
        for room in rooms:
            await asyncio.wait_for(room.disconnect(), 10)


@pytest.fixture
def cpu_work_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[CpuWorkThreads]:
    """Wraps the real encode/decode/convert calls to note which thread runs them.

    The calls still do their real work; this only observes where they run, so a
    test can check that none of them blocks the event loop's thread.
    """
    record = CpuWorkThreads()

    def observe(owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            record.calls.setdefault(name, []).append(threading.get_ident())
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, wrapper)

    observe(VideoDecoder, "decode", "decode")
    observe(VideoEncoder, "encode", "encode")
    observe(VideoFrame, "convert", "convert")
    yield record
