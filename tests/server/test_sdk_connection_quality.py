"""Connection quality reaches official-SDK clients: EXCELLENT on a clean link, POOR while a
quarter of the UDP packets are dropped (nftables in the suite's namespace), and back after."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kitewire.server import Server
from livekit import rtc

from lossy_namespace import dropping_udp

from .conftest import Connect
from .sdk_media import EventLog, Voice

pytestmark = pytest.mark.timeout(120)

_EXCELLENT = rtc.ConnectionQuality.QUALITY_EXCELLENT
_POOR = rtc.ConnectionQuality.QUALITY_POOR


def _is(identity: str, quality: int) -> Callable[[tuple[str, int]], bool]:
    return lambda event: event == (identity, quality)


async def test_quality_follows_packet_loss(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    log: EventLog[tuple[str, int]] = EventLog(
        bob, "connection_quality_changed", lambda participant, quality: (participant.identity, quality)
    )
    alice = await sdk_rooms("alice")
    voice = Voice()
    try:
        # A tone: audio is never retransmitted, so what is lost stays lost.
        voice.set_talking(True)
        await voice.publish(alice)
        start = time.monotonic()
        # Each participant hears about itself and about the publishers it receives.
        await log.wait(_is("bob", _EXCELLENT), start, 15)
        await log.wait(_is("alice", _EXCELLENT), start, 15)
        with dropping_udp(25):
            await log.wait(_is("alice", _POOR), time.monotonic(), 20)
        await log.wait(_is("alice", _EXCELLENT), time.monotonic(), 20)
    finally:
        await voice.stop()
