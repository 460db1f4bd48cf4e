"""A room that keeps streaming while a test attacks its neighbours: the "costs only itself" check."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from livekit import rtc

from .sdk_media import CounterPublisher, CounterReader, in_order_fraction, subscribed_tracks

if TYPE_CHECKING:
    from .conftest import Connect


class LiveRoom:
    """alice streams counters to bob in room "live" during a test."""

    def __init__(self) -> None:
        self.publisher: CounterPublisher | None = None
        self.reader: CounterReader | None = None

    async def start(self, connect: Connect) -> None:
        bob = await connect("bob", "live")
        tracks = subscribed_tracks(bob)
        alice = await connect("alice", "live")
        self.publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
        await self.publisher.start()
        self.reader = CounterReader(await asyncio.wait_for(tracks.get(), 15))
        await asyncio.wait_for(self.reader.first_frame.wait(), 15)

    def mark(self) -> int:
        assert self.reader is not None
        return len(self.reader.counters)

    async def check_since(self, mark: int, started: float) -> None:
        """The live room kept streaming since ``mark``; observes at least 2 s more."""
        assert self.reader is not None
        await asyncio.sleep(2.0)
        seconds = time.monotonic() - started
        window = self.reader.counters[mark:]
        fraction, increasing = in_order_fraction(window)
        assert increasing and fraction >= 0.9, (
            f"live room degraded: {fraction:.1%}, increasing={increasing}, {len(window)} frames since mark, "
            f"total {len(self.reader.counters)}, undecodable {self.reader.undecodable}, "
            f"sent {self.publisher.sent if self.publisher else None}"
        )
        assert len(window) >= seconds * 30 * 0.7, f"live room delivered only {len(window)} frames in {seconds:.1f}s"

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()
        if self.reader is not None:
            await self.reader.close()
