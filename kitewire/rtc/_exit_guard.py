"""Closing a Room the program left connected when its event loop ends.

``asyncio.run`` ends by cancelling every task still pending and waiting for them. A
connected Room has several (signal reader, pings, RTP feedback, decode loops); cut off
one by one they look like a lost connection, start a rejoin on a loop about to close
and leave "Task was destroyed but it is pending", "Unclosed client session" or "Event
loop is closed" behind. The guard is one more task that only waits: when it is
cancelled while its room is still connected, it disconnects the room properly (in the
time ``asyncio.run`` gives cancelled tasks to finish), so the program exits quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("kitewire.rtc")

# how long an exiting program may wait for the room to leave
EXIT_DISCONNECT_TIMEOUT = 3.0


class LoopExitGuard:
    """Runs ``close()`` if the loop cancels it while ``is_connected()`` is still True."""

    def __init__(self, is_connected: Callable[[], bool], close: Callable[[], Awaitable[None]]) -> None:
        self._is_connected = is_connected
        self._close = close
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._watch(), name="kitewire room exit guard"
        )

    def disarm(self) -> None:
        """The room is being closed on purpose: stop guarding it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    async def _watch(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never resolves
        except asyncio.CancelledError:
            if self._task is None or not self._is_connected():
                return  # disarmed, or the room is already closed
            self._task = None
            try:
                await asyncio.wait_for(self._close(), EXIT_DISCONNECT_TIMEOUT)
            except (Exception, asyncio.CancelledError) as error:
                logger.debug("closing a room left connected at loop exit: %r", error, exc_info=True)
            with contextlib.suppress(Exception):
                await asyncio.sleep(0)
