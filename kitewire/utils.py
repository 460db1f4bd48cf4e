"""Small shared helpers."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["RingQueue"]


class RingQueue(Generic[T]):
    """A queue that keeps only the newest items: live video wants fresh frames.

    ``capacity`` 0 means unbounded; with capacity N a ``put`` into a full queue
    drops the oldest item. ``put`` never blocks (it is called from the event
    loop as frames arrive); ``get`` waits until an item is there.
    :meth:`put_from_thread` puts from another thread: the item is in the queue at
    once (so a consumer busy in its own code finds the newest item when it comes
    back, without waiting for the loop), and only a waiting consumer needs the
    loop to wake it.
    """

    def __init__(self, capacity: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise ValueError(f"capacity must be an int >= 0, got {type(capacity).__name__} {capacity!r}")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 (0 = unbounded), got {capacity}")
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._dropped = 0
        # puts may come from another thread (put_from_thread) while the loop takes items
        self._lock = threading.Lock()
        self._waiters = 0
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

    def _append(self, item: T) -> None:
        # the caller holds the lock
        if self._capacity > 0 and len(self._items) >= self._capacity:
            self._items.popleft()
            self._dropped += 1
        self._items.append(item)

    def put(self, item: T) -> None:
        """Append ``item``, discarding the oldest item first when full (on the consumer's loop)."""
        with self._lock:
            self._append(item)
        if self._not_empty is not None:
            self._not_empty.set()

    def put_from_thread(self, item: T, loop: asyncio.AbstractEventLoop) -> None:
        """Append ``item`` from a thread other than ``loop``'s (the consumer's loop).

        The item is queued before this returns; a consumer waiting in :meth:`get` is
        woken through ``loop``. Raises RuntimeError when that loop is closed.
        """
        with self._lock:
            self._append(item)
            waiting = self._waiters > 0
        if waiting:
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._not_empty is not None and self._items:
            self._not_empty.set()

    def get_nowait(self) -> T:
        """Remove and return the oldest item; IndexError when empty."""
        with self._lock:
            if not self._items:
                raise IndexError("RingQueue is empty")
            return self._items.popleft()

    async def get(self) -> T:
        """Remove and return the oldest item, waiting until there is one."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                # counted under the lock: a put_from_thread after this wakes us
                self._waiters += 1
            try:
                loop = asyncio.get_running_loop()
                if self._not_empty is None or self._event_loop is not loop:
                    self._not_empty = asyncio.Event()
                    self._event_loop = loop
                self._not_empty.clear()
                await self._not_empty.wait()
            finally:
                with self._lock:
                    self._waiters -= 1
