"""Active speakers reach official-SDK clients: a publisher that starts talking (a sine from the
official AudioSource, so the audio-level extension is libwebrtc's own) becomes a speaker for
everyone in the room, and stops being one when it falls silent or mutes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from kitewire.server import Server
from kitewire.signal import connect, create_token
from livekit import api, rtc

from .conftest import KEY, SECRET, Connect
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


async def test_a_hidden_speaker_is_never_announced(server: Server, sdk_rooms: Connect) -> None:
    # A raw signal client sees every SpeakersChanged the server sends, not just what an SDK shows.
    observer, _ = await connect(
        server.url,
        create_token("devkey", "secret", identity="observer", room="room", can_subscribe=False),
        legacy=True,
        keepalive=False,
    )
    ghost_room = rtc.Room()
    grants = api.VideoGrants(room_join=True, room="room", hidden=True)
    ghost_token = api.AccessToken(KEY, SECRET).with_identity("ghost").with_grants(grants).to_jwt()
    voices = [Voice(), Voice()]
    try:
        await asyncio.wait_for(ghost_room.connect(server.url, ghost_token), 20)
        alice = await sdk_rooms("alice")
        for voice, room in zip(voices, (ghost_room, alice)):
            await voice.publish(room)
            voice.set_talking(True)
        members = server.rooms.rooms["room"].participants
        ghost_sid, alice_sid = members["ghost"].sid, members["alice"].sid
        announced: set[str] = set()
        deadline = time.monotonic() + 10
        # Until alice has been announced, and a second more.
        while time.monotonic() < deadline:
            try:
                message = await observer.connection.receive(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if message is None:
                break
            if message.WhichOneof("message") == "speakers_changed":
                announced.update(s.sid for s in message.speakers_changed.speakers)
                if alice_sid in announced:
                    deadline = min(deadline, time.monotonic() + 1.0)
        assert alice_sid in announced, "the observer never heard of a speaker"
        assert ghost_sid not in announced
    finally:
        for voice in voices:
            await voice.stop()
        await asyncio.wait_for(ghost_room.disconnect(), 10)
        await observer.close()
