"""Audio kitewire -> kitewire through kitewire serve: a 440 Hz sine and a two-tone stereo signal
arrive at their frequencies with SNR >= 30 dB after Opus, with >= 99 % of the 20 ms frames."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from audio_peers import (
    RATE,
    Heard,
    RoomFactory,
    check_tone,
    listen,
    measured,
    play,
    sound_start,
    subscribed_audio,
    windowed_snr,
)
from kitewire import rtc

from audio_signal import sine

pytestmark = pytest.mark.asyncio


async def test_mono_sine_arrives_at_440_hz_with_99_percent_of_frames(connect_room: RoomFactory) -> None:
    sender, receiver = await connect_room("speaker"), await connect_room("listener")
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    await sender.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    remote = await subscribed_audio(receiver)
    stream = rtc.AudioStream(remote, sample_rate=RATE, num_channels=1, frame_size_ms=20)
    heard = Heard()
    seconds = 10.0
    listener = asyncio.create_task(listen(stream, heard, seconds + 8))
    await asyncio.sleep(0.3)
    await play(source, sine(440, seconds))
    await source.wait_for_playout()
    await asyncio.sleep(1.0)
    await stream.aclose()
    await listener
    check_tone(heard, seconds)


async def test_stereo_two_tones_stay_on_their_channels(connect_room: RoomFactory) -> None:
    sender, receiver = await connect_room("stereo-speaker"), await connect_room("stereo-listener")
    source = rtc.AudioSource(RATE, 2)
    track = rtc.LocalAudioTrack.create_audio_track("two-tone", source)
    await sender.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    remote = await subscribed_audio(receiver)
    stream = rtc.AudioStream.from_track(track=remote, sample_rate=RATE, num_channels=2)
    heard = Heard()
    seconds = 3.0
    listener = asyncio.create_task(listen(stream, heard, seconds + 6))
    await asyncio.sleep(0.3)
    await play(source, np.stack([sine(440, seconds), sine(660, seconds)], axis=1))
    await source.wait_for_playout()
    await asyncio.sleep(0.8)
    await stream.aclose()
    await listener
    both = heard.samples()
    start = sound_start(both[:, 0])
    left, right = both[start + 4800 : start + int((seconds - 0.3) * RATE)].T
    assert measured(left) == pytest.approx(440, abs=1)
    assert measured(right) == pytest.approx(660, abs=1)
    assert np.median(windowed_snr(left, [440])) >= 30
    assert np.median(windowed_snr(right, [660])) >= 30


async def test_capture_faster_than_real_time_is_held_back_by_the_queue() -> None:
    source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
    loop = asyncio.get_running_loop()
    started = loop.time()
    peak = 0.0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, source.queued_duration)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await play(source, sine(440, 1.0))  # one second, offered as fast as possible
    elapsed = loop.time() - started
    watcher.cancel()
    # the queue never held more than it may, so the caller was slowed to real time
    assert peak <= 0.2 + 1e-9
    assert elapsed >= 0.7
    await source.wait_for_playout()
    assert source.queued_duration == 0
    with pytest.raises(ValueError, match="48000 Hz x 1 channels"):
        await source.capture_frame(rtc.AudioFrame.create(16_000, 1, 160))
    with pytest.raises(ValueError, match="queue_size_ms"):
        rtc.AudioSource(RATE, 1, queue_size_ms=0)
    await source.aclose()
