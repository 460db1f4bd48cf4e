"""Active speakers reach official-SDK clients: a publisher that starts talking (a sine from the
official AudioSource, so the audio-level extension is libwebrtc's own) becomes a speaker for
everyone in the room, and stops being one when it falls silent or mutes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import EventLog, Voice

pytestmark = pytest.mark.timeout(90)


def _speaker_log(room: rtc.Room) -> EventLog[list[str]]:
    return EventLog(room, "active_speakers_changed", lambda speakers: [p.identity for p in speakers])


def _speaking(identity: str) -> Callable[[list[str]], bool]:
    return lambda identities: identity in identities


def _silent(identity: str) -> Callable[[list[str]], bool]:
    return lambda identities: identity not in identities


async def test_speaker_starts_and_stops_for_everyone(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    bob_log = _speaker_log(bob)
    alice = await sdk_rooms("alice")
    alice_log = _speaker_log(alice)
    voice = Voice()
    try:
        await voice.publish(alice)
        # Silence is no speech: nobody becomes a speaker while alice says nothing.
        await asyncio.sleep(2.0)
        assert all("alice" not in identities for _, identities in bob_log.events), bob_log.events

        latencies: list[tuple[float, float]] = []
        for _ in range(2):
            voice.set_talking(True)
            started = await bob_log.wait(_speaking("alice"), voice.changed_at, 10)
            # The speaker is told too (livekit's SDK reports itself among the speakers).
            await alice_log.wait(_speaking("alice"), voice.changed_at, 10)
            await asyncio.sleep(1.0)
            voice.set_talking(False)
            stopped = await bob_log.wait(_silent("alice"), voice.changed_at, 10)
            latencies.append((started, stopped))
            await asyncio.sleep(1.0)
        print(f"speaker latency (start, stop) seconds: {latencies}")
    finally:
        await voice.stop()


async def test_a_muted_speaker_stops_speaking(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    log = _speaker_log(bob)
    alice = await sdk_rooms("alice")
    voice = Voice()
    try:
        track = await voice.publish(alice)
        voice.set_talking(True)
        await log.wait(_speaking("alice"), voice.changed_at, 10)
        muted_at = time.monotonic()
        track.mute()
        await log.wait(_silent("alice"), muted_at, 10)
    finally:
        await voice.stop()
