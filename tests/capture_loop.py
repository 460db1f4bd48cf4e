"""Feeding a source at 30 frames a second for as long as a test needs it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable


@contextlib.asynccontextmanager
async def capturing(capture: Callable[[int], object]) -> AsyncIterator[None]:
    """Calls ``capture(index)`` 30 times a second while inside."""

    async def run() -> None:
        index, start = 0, time.monotonic()
        while True:
            capture(index)
            index += 1
            await asyncio.sleep(max(0.0, start + index / 30 - time.monotonic()))

    task = asyncio.get_running_loop().create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
