"""Audio crossover with the official livekit SDK through kitewire serve, both ways: a 440 Hz sine
arrives at its frequency with SNR >= 30 dB and >= 99 % of its 20 ms frames over 10 s."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from audio_peers import RATE, Heard, check_tone, listen, measured, play, sound_start, subscribed_audio, windowed_snr
from kitewire import rtc
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from livekit import rtc as lk

from audio_signal import sine

SECONDS = 10.0


def token_for(identity: str, room: str) -> str:
    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)


async def test_official_publisher_to_kitewire_audio_stream(server: Server) -> None:
    listener, speaker = rtc.Room(), lk.Room()
    try:
        await listener.connect(server.url, token_for("kitewire-listener", "audio-in"))
        await speaker.connect(server.url, token_for("official-speaker", "audio-in"))
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


async def test_kitewire_publisher_to_official_audio_stream(server: Server) -> None:
    listener, speaker = lk.Room(), rtc.Room()
    try:
        await listener.connect(server.url, token_for("official-listener", "audio-out"))
        await speaker.connect(server.url, token_for("kitewire-speaker", "audio-out"))
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


@pytest.fixture
async def server() -> object:
    from kitewire.server import ServerConfig

    async with Server(ServerConfig.dev(port=0, log_level="warning")) as running:
        yield running


def _check_two_tones(heard: Heard, seconds: float) -> None:
    both = heard.samples()
    assert both.shape[1] == 2
    start = sound_start(both[:, 0])
    left, right = both[start + 4800 : start + int((seconds - 0.3) * RATE)].T
    assert len(left) >= 0.9 * (seconds - 0.4) * RATE
    assert measured(left) == pytest.approx(440, abs=1)
    assert measured(right) == pytest.approx(660, abs=1)
    assert np.median(windowed_snr(left, [440])) >= 30
    assert np.median(windowed_snr(right, [660])) >= 30


@pytest.mark.parametrize("direction", ["official-to-kitewire", "kitewire-to-official"])
async def test_two_tone_stereo_crosses_both_ways(server: Server, direction: str) -> None:
    seconds = 4.0
    speaker_sdk, listener_sdk = (lk, rtc) if direction == "official-to-kitewire" else (rtc, lk)
    listener, speaker = listener_sdk.Room(), speaker_sdk.Room()
    room = f"stereo-{direction}"
    try:
        await listener.connect(server.url, token_for("stereo-listener", room))
        await speaker.connect(server.url, token_for("stereo-speaker", room))
        source = speaker_sdk.AudioSource(RATE, 2)
        track = speaker_sdk.LocalAudioTrack.create_audio_track("two-tone", source)
        options = speaker_sdk.TrackPublishOptions(source=speaker_sdk.TrackSource.SOURCE_MICROPHONE)
        if speaker_sdk is lk:
            # libwebrtc's default Opus rate leaves a stereo sine only ~27 dB above its noise;
            # music-grade stereo is what a user publishing two channels asks for
            options.audio_encoding.max_bitrate = 128_000
        await speaker.local_participant.publish_track(track, options)
        remote = await subscribed_audio(listener)
        stream = listener_sdk.AudioStream(remote, sample_rate=RATE, num_channels=2)
        heard = Heard()
        reader = asyncio.create_task(listen(stream, heard, seconds + 8))
        await asyncio.sleep(0.3)
        await play(
            source, np.stack([sine(440, seconds), sine(660, seconds)], axis=1), frame_type=speaker_sdk.AudioFrame
        )
        await source.wait_for_playout()
        await asyncio.sleep(1.0)
        await stream.aclose()
        await reader
        _check_two_tones(heard, seconds)
    finally:
        await speaker.disconnect()
        await listener.disconnect()
