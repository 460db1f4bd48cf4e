"""Connection quality reaches official-SDK clients: EXCELLENT on a clean link, POOR while a
quarter of the UDP packets are dropped (nftables in the suite's namespace), and back after."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from kitewire.server import Server
from livekit import rtc

from lossy_namespace import dropping_udp

from .conftest import Connect
from .sdk_media import Voice

pytestmark = pytest.mark.timeout(120)

_EXCELLENT = rtc.ConnectionQuality.QUALITY_EXCELLENT
_POOR = rtc.ConnectionQuality.QUALITY_POOR


class QualityLog:
    """Every connection_quality_changed of a room: (arrival time, identity, quality)."""

    def __init__(self, room: rtc.Room) -> None:
        self.events: list[tuple[float, str, int]] = []
        self._changed = asyncio.Event()
        room.on("connection_quality_changed", self._on)

    def _on(self, participant: rtc.Participant, quality: int) -> None:
        self.events.append((time.monotonic(), participant.identity, quality))
        self._changed.set()

    async def wait(self, identity: str, quality: int, after: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(at >= after and who == identity and q == quality for at, who, q in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no quality {quality} for {identity} in {timeout}s: {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


async def test_quality_follows_packet_loss(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    log = QualityLog(bob)
    alice = await sdk_rooms("alice")
    voice = Voice()
    voice.start()
    try:
        # A tone: audio is never retransmitted, so what is lost stays lost.
        voice.set_talking(True)
        track = rtc.LocalAudioTrack.create_audio_track("mic", voice.source)
        await alice.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        start = time.monotonic()
        # Each participant hears about itself and about the publishers it receives.
        await log.wait("bob", _EXCELLENT, start, 15)
        await log.wait("alice", _EXCELLENT, start, 15)
        with dropping_udp(25):
            lossy = time.monotonic()
            await log.wait("alice", _POOR, lossy, 20)
        clean = time.monotonic()
        await log.wait("alice", _EXCELLENT, clean, 20)
    finally:
        await voice.stop()
