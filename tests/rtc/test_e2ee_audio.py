"""End-to-end encrypted audio (Opus, one clear TOC byte) through the kitewire server, both ways
with the official SDK, and encrypted data packets from kitewire opened by the official SDK."""

from __future__ import annotations

import asyncio

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


async def test_official_speaker_with_shared_key_to_kitewire(server: Server) -> None:
    listener, speaker = rtc.Room(), lk.Room()
    try:
        await listener.connect(server.url, token_for("kitewire-listener", "e2ee-audio-1"), kitewire_options())
        await speaker.connect(server.url, token_for("official-speaker", "e2ee-audio-1"), official_options())
        source = lk.AudioSource(RATE, 1)
        track = lk.LocalAudioTrack.create_audio_track("tone", source)
        await speaker.local_participant.publish_track(
            track, lk.TrackPublishOptions(source=lk.TrackSource.SOURCE_MICROPHONE)
        )
        remote = await subscribed_audio(listener)
        stream = rtc.AudioStream(remote, sample_rate=RATE, num_channels=1, frame_size_ms=20)
        heard = Heard()
        reader = asyncio.create_task(listen(stream, heard, SECONDS + 10))
        await asyncio.sleep(0.3)
        await play(source, sine(440, SECONDS), frame_type=lk.AudioFrame)
        await source.wait_for_playout()
        await asyncio.sleep(1.0)
        await stream.aclose()
        await reader
        check_tone(heard, SECONDS)
    finally:
        await speaker.disconnect()
        await listener.disconnect()


async def test_kitewire_speaker_with_shared_key_to_official(server: Server) -> None:
    listener, speaker = lk.Room(), rtc.Room()
    try:
        await listener.connect(server.url, token_for("official-listener", "e2ee-audio-2"), official_options())
        await speaker.connect(server.url, token_for("kitewire-speaker", "e2ee-audio-2"), kitewire_options())
        source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("tone", source)
        await speaker.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        remote = await subscribed_audio(listener)
        stream = lk.AudioStream(remote, sample_rate=RATE, num_channels=1)
        heard = Heard()
        reader = asyncio.create_task(listen(stream, heard, SECONDS + 10))
        await asyncio.sleep(0.3)
        await play(source, sine(440, SECONDS))
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
