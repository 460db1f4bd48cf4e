"""Active speakers reach official-SDK clients: a publisher that starts talking (a sine from the
official AudioSource, so the audio-level extension is libwebrtc's own) becomes a speaker for
everyone in the room, and stops being one when it falls silent."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import Voice

pytestmark = pytest.mark.timeout(90)


class SpeakerLog:
    """Every active_speakers_changed of a room: (arrival time, identities)."""

    def __init__(self, room: rtc.Room) -> None:
        self.events: list[tuple[float, list[str]]] = []
        self._changed = asyncio.Event()
        room.on("active_speakers_changed", self._on)

    def _on(self, speakers: list[rtc.Participant]) -> None:
        self.events.append((time.monotonic(), [p.identity for p in speakers]))
        self._changed.set()

    async def wait(self, speaking: bool, identity: str, after: float, timeout: float) -> float:
        """Seconds from ``after`` to the first event since then with ``identity`` speaking (or not)."""
        deadline = time.monotonic() + timeout
        while True:
            for at, identities in self.events:
                if at >= after and (identity in identities) == speaking:
                    return at - after
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no event with {identity} speaking={speaking} in {timeout}s: {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


async def test_speaker_starts_and_stops_for_everyone(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    bob_log = SpeakerLog(bob)
    alice = await sdk_rooms("alice")
    alice_log = SpeakerLog(alice)
    voice = Voice()
    voice.start()
    try:
        track = rtc.LocalAudioTrack.create_audio_track("mic", voice.source)
        await alice.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        # Silence is no speech: nobody becomes a speaker while alice says nothing.
        await asyncio.sleep(2.0)
        assert all("alice" not in identities for _, identities in bob_log.events), bob_log.events

        latencies: list[tuple[float, float]] = []
        for _ in range(2):
            voice.set_talking(True)
            started = await bob_log.wait(True, "alice", voice.changed_at, 10)
            # The speaker is told too (livekit's SDK reports itself among the speakers).
            await alice_log.wait(True, "alice", voice.changed_at, 10)
            await asyncio.sleep(1.0)
            voice.set_talking(False)
            stopped = await bob_log.wait(False, "alice", voice.changed_at, 10)
            latencies.append((started, stopped))
            await asyncio.sleep(1.0)
        print(f"speaker latency (start, stop) seconds: {latencies}")
    finally:
        await voice.stop()


async def test_a_muted_speaker_stops_speaking(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    log = SpeakerLog(bob)
    alice = await sdk_rooms("alice")
    voice = Voice()
    voice.start()
    try:
        track = rtc.LocalAudioTrack.create_audio_track("mic", voice.source)
        await alice.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        voice.set_talking(True)
        await log.wait(True, "alice", voice.changed_at, 10)
        muted_at = time.monotonic()
        track.mute()
        await log.wait(False, "alice", muted_at, 10)
    finally:
        await voice.stop()
