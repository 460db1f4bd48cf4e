"""End-to-end encrypted audio (Opus, one clear TOC byte) through the kitewire server, both ways
with the official SDK, and encrypted data packets from kitewire opened by the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from audio_peers import RATE, Heard, check_tone, listen, play, subscribed_audio
from kitewire import rtc
from kitewire.server import Server, ServerConfig
from livekit import rtc as lk
from test_e2ee import kitewire_options, official_options
from test_official_sdk import token_for

from audio_signal import sine
from futures import resolve_once

SECONDS = 6.0


@pytest.mark.parametrize("speaker_sdk", ["official", "kitewire"])
async def test_encrypted_tone_crosses_with_a_shared_key(server: Server, speaker_sdk: str) -> None:
    official_speaks = speaker_sdk == "official"
    listener: Any = rtc.Room() if official_speaks else lk.Room()
    speaker: Any = lk.Room() if official_speaks else rtc.Room()
    sdk_of_speaker: Any = lk if official_speaks else rtc
    room_name = f"e2ee-audio-{speaker_sdk}"
    try:
        await listener.connect(
            server.url, token_for("listener", room_name), kitewire_options() if official_speaks else official_options()
        )
        await speaker.connect(
            server.url, token_for("speaker", room_name), official_options() if official_speaks else kitewire_options()
        )
        source = sdk_of_speaker.AudioSource(RATE, 1)
        track = sdk_of_speaker.LocalAudioTrack.create_audio_track("tone", source)
        await speaker.local_participant.publish_track(
            track, sdk_of_speaker.TrackPublishOptions(source=sdk_of_speaker.TrackSource.SOURCE_MICROPHONE)
        )
        remote = await subscribed_audio(listener)
        if official_speaks:
            stream: Any = rtc.AudioStream(remote, sample_rate=RATE, num_channels=1, frame_size_ms=20)
        else:
            stream = lk.AudioStream(remote, sample_rate=RATE, num_channels=1)
        heard = Heard()
        reader = asyncio.create_task(listen(stream, heard, SECONDS + 10))
        await asyncio.sleep(0.3)
        await play(source, sine(440, SECONDS), frame_type=lk.AudioFrame if official_speaks else None)
        await source.wait_for_playout()
        await asyncio.sleep(1.0)
        await stream.aclose()
        await reader
        check_tone(heard, SECONDS)
    finally:
        await speaker.disconnect()
        await listener.disconnect()


async def test_kitewire_data_is_sealed_and_the_official_sdk_opens_it(server: Server) -> None:
    official, ours = lk.Room(), rtc.Room()
    received: asyncio.Future[lk.DataPacket] = asyncio.get_running_loop().create_future()
    official.on("data_received", lambda packet: resolve_once(received, packet))
    try:
        await official.connect(server.url, token_for("official", "e2ee-data"), official_options())
        await ours.connect(server.url, token_for("kitewire", "e2ee-data"), kitewire_options())
        await ours.local_participant.publish_data(b"for your eyes only", reliable=True, topic="secret")
        packet = await asyncio.wait_for(received, 15)
    finally:
        await ours.disconnect()
        await official.disconnect()
    assert packet.data == b"for your eyes only"
    assert packet.topic == "secret"
    assert packet.participant is not None and packet.participant.identity == "kitewire"


@pytest.fixture
async def server() -> object:
    async with Server(ServerConfig.dev(port=0, log_level="warning")) as running:
        yield running
