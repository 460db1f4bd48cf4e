"""Small shared helpers."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["RingQueue"]


class RingQueue(Generic[T]):
    """A queue that keeps only the newest items: live video wants fresh frames.

    ``capacity`` 0 means unbounded; with capacity N a ``put`` into a full queue
    drops the oldest item. ``put`` never blocks (it is called from the event
    loop as frames arrive); ``get`` waits until an item is there.
    """

    def __init__(self, capacity: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise ValueError(f"capacity must be an int >= 0, got {type(capacity).__name__} {capacity!r}")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 (0 = unbounded), got {capacity}")
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._dropped = 0
        # created lazily: an asyncio.Event must be used on the loop that awaits it
        self._not_empty: asyncio.Event | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    @property
    def capacity(self) -> int:
        """Maximum number of items kept (0 = unbounded)."""
        return self._capacity

    @property
    def dropped(self) -> int:
        """How many items were discarded because the queue was full."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Append ``item``, discarding the oldest item first when full."""
        if self._capacity > 0 and len(self._items) >= self._capacity:
            self._items.popleft()
            self._dropped += 1
        self._items.append(item)
        if self._not_empty is not None:
            self._not_empty.set()

    def get_nowait(self) -> T:
        """Remove and return the oldest item; IndexError when empty."""
        if not self._items:
            raise IndexError("RingQueue is empty")
        return self._items.popleft()

    async def get(self) -> T:
        """Remove and return the oldest item, waiting until there is one."""
        while not self._items:
            loop = asyncio.get_running_loop()
            if self._not_empty is None or self._event_loop is not loop:
                self._not_empty = asyncio.Event()
                self._event_loop = loop
            self._not_empty.clear()
            await self._not_empty.wait()
        return self._items.popleft()
