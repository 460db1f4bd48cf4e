"""Helpers of the RoomService tests: a LiveKitAPI on the embedded server, and official-SDK events as queues."""

from __future__ import annotations

import asyncio
from typing import Any

from kitewire.server import Server
from livekit import api, rtc
from livekit.rtc.room import EventTypes

from .conftest import KEY, SECRET


def admin_api(server: Server) -> api.LiveKitAPI:
    """livekit-api's client signing each call with the dev key, as a backend would (close with ``aclose``)."""
    return api.LiveKitAPI(url=server.http_url, api_key=KEY, api_secret=SECRET)


def api_token(**grants: Any) -> str:
    """A server-API token with exactly ``grants`` (VideoGrants fields), for calls that must be refused."""
    return api.AccessToken(KEY, SECRET).with_identity("backend").with_grants(api.VideoGrants(**grants)).to_jwt()


class Events:
    """Every emission of the named events of an official-SDK Room, as (event, args) in one queue each."""

    def __init__(self, room: rtc.Room, *names: EventTypes) -> None:
        self.queues: dict[str, asyncio.Queue[tuple[Any, ...]]] = {}
        for name in names:
            queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
            self.queues[name] = queue
            room.on(name, lambda *args, q=queue: q.put_nowait(args))

    async def next(self, name: str, timeout: float = 15.0) -> tuple[Any, ...]:
        """The next emission of ``name`` (waits at most ``timeout`` seconds)."""
        return await asyncio.wait_for(self.queues[name].get(), timeout)

    async def until(self, name: str, predicate: Any, timeout: float = 15.0) -> tuple[Any, ...]:
        """The first emission of ``name`` whose args satisfy ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            args = await asyncio.wait_for(self.queues[name].get(), max(0.01, deadline - loop.time()))
            if predicate(*args):
                return args

    def clear(self, name: str) -> None:
        """Forget the emissions of ``name`` so far."""
        queue = self.queues[name]
        while not queue.empty():
            queue.get_nowait()

    def pending(self, name: str) -> int:
        """How many emissions of ``name`` are queued unread."""
        return self.queues[name].qsize()
