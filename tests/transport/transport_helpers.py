"""Shared helpers for transport tests (imported by name; tests/ is not a package)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kitewire.transport import PeerConnection


async def negotiate(offerer: PeerConnection, answerer: PeerConnection) -> None:
    """One offer/answer round (candidates travel inside the SDP)."""
    offer = await offerer.create_offer()
    await answerer.set_remote_description(offer, "offer")
    answer = await answerer.create_answer()
    await offerer.set_remote_description(answer, "answer")


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until ``predicate()`` is true; fail the test on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met within timeout")
        await asyncio.sleep(0.02)
