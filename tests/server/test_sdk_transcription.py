"""Transcriptions between official-SDK clients: relayed from agents, dropped from anyone else (as livekit-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from kitewire.server import Server
from livekit import api, rtc

from .conftest import KEY, SECRET, Connect

pytestmark = pytest.mark.timeout(60)

Segments = list[rtc.TranscriptionSegment]


def _agent_token(identity: str, room: str = "room") -> str:
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True)
    return api.AccessToken(KEY, SECRET).with_identity(identity).with_kind("agent").with_grants(grants).to_jwt()


@pytest.fixture
async def agent_room(server: Server) -> AsyncIterator[rtc.Room]:
    room = rtc.Room()
    await asyncio.wait_for(room.connect(server.url, _agent_token("agent-1")), 20)
    try:
        yield room
    finally:
        await asyncio.wait_for(room.disconnect(), 10)


def _inbox(room: rtc.Room) -> asyncio.Queue[tuple[str, Segments]]:
    queue: asyncio.Queue[tuple[str, Segments]] = asyncio.Queue()

    def on_transcription(
        segments: Segments, participant: rtc.Participant | None, publication: rtc.TrackPublication | None
    ) -> None:
        queue.put_nowait((participant.identity if participant is not None else "", segments))

    room.on("transcription_received", on_transcription)
    return queue


async def _publish_until_received(
    room: rtc.Room, inbox: asyncio.Queue[tuple[str, Segments]], transcription: rtc.Transcription
) -> tuple[str, Segments]:
    # Data channels open asynchronously after the join: retry until one lands.
    for _ in range(50):
        await room.local_participant.publish_transcription(transcription)
        try:
            return await asyncio.wait_for(inbox.get(), 0.2)
        except TimeoutError:
            continue
    raise AssertionError("the transcription never arrived")


async def test_agent_transcription_reaches_the_other_participant(
    server: Server, sdk_rooms: Connect, agent_room: rtc.Room
) -> None:
    user = await sdk_rooms("user")
    inbox = _inbox(user)
    # A transcription without a track sid would make the official SDK panic (it unwraps the sid): never relayed.
    bad = rtc.TranscriptionSegment(id="bad", text="no track", start_time=0, end_time=1, language="en", final=True)
    await agent_room.local_participant.publish_transcription(
        rtc.Transcription(participant_identity="user", track_sid="", segments=[bad])
    )
    segment = rtc.TranscriptionSegment(
        id="seg-1", text="hello there", start_time=0, end_time=1000, language="en", final=True
    )
    transcription = rtc.Transcription(participant_identity="user", track_sid="TR_mic", segments=[segment])
    about, segments = await _publish_until_received(agent_room, inbox, transcription)
    assert about == "user"
    assert [(s.id, s.text, s.final, s.language, s.end_time) for s in segments] == [
        ("seg-1", "hello there", True, "en", 1000)
    ]


async def test_transcription_from_a_standard_participant_is_dropped(
    server: Server, sdk_rooms: Connect, agent_room: rtc.Room
) -> None:
    user = await sdk_rooms("user")
    other = await sdk_rooms("other")
    inbox = _inbox(other)
    data: asyncio.Queue[bytes] = asyncio.Queue()
    other.on("data_received", lambda packet: data.put_nowait(bytes(packet.data)))
    segment = rtc.TranscriptionSegment(id="s", text="forged", start_time=0, end_time=1, language="en", final=True)
    forged = rtc.Transcription(participant_identity="user", track_sid="TR_mic", segments=[segment])
    # A user packet after the transcriptions, on the same ordered channel, shows they were not just slow.
    for _ in range(50):
        await user.local_participant.publish_transcription(forged)
        await user.local_participant.publish_data(b"marker", reliable=True)
        try:
            assert await asyncio.wait_for(data.get(), 0.2) == b"marker"
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("the marker never arrived")
    assert inbox.empty()
