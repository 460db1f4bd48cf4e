"""Odd audio input loses nothing and holds memory to its bounds: frames of every size in one
stream, formats a source does not take, a producer faster than real time."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from kitewire import rtc

RATE = 48_000


async def _read(stream: rtc.AudioStream, into: list[np.ndarray]) -> None:
    async for event in stream:
        into.append(np.frombuffer(bytes(event.frame.data.cast("B")), dtype=np.int16))


async def test_frames_of_every_size_in_one_stream_play_out_every_sample_in_order() -> None:
    source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
    track = rtc.LocalAudioTrack.create_audio_track("ramp", source)
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1, frame_size_ms=10)
    heard: list[np.ndarray] = []
    reader = asyncio.create_task(_read(stream, heard))
    ramp = (np.arange(RATE) % 30_000 + 1).astype(np.int16)  # never zero: a lost or added sample shows
    sizes = [336, 624, 1, 2640, 480, 7, 4800] * 5  # 7 ms, 13 ms, one sample, 55 ms, ... 100 ms: a full queue
    peak = 0.0
    offset = 0
    for size in sizes:
        piece = ramp[offset : offset + size]
        offset += size
        # offered as fast as the queue lets (faster than real time)
        await source.capture_frame(rtc.AudioFrame(bytearray(piece.tobytes()), RATE, 1, size))
        peak = max(peak, source.queued_duration)
    await source.wait_for_playout()
    await asyncio.sleep(0.2)
    await stream.aclose()
    await reader
    out = np.concatenate(heard)
    # the stream yields whole 10 ms frames: all but the last partial one arrived, in order
    whole = offset // 480 * 480
    assert len(out) == whole
    assert np.array_equal(out, ramp[:whole])
    assert peak <= 0.1 + 1e-9  # the queue never held more than its 100 ms
    await source.aclose()


@pytest.mark.parametrize(
    ("rate", "channels", "message"),
    [
        (0, 1, "sample_rate"),
        (400_000, 1, "sample_rate between"),
        (44_100.0, 1, "sample_rate"),
        (RATE, 0, "num_channels"),
    ],
)
async def test_formats_a_source_cannot_take_are_value_errors(rate: object, channels: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rtc.AudioSource(rate, channels)  # type: ignore[arg-type]


async def test_a_frame_of_another_format_is_refused_and_the_queue_keeps_what_it_had() -> None:
    source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
    await source.capture_frame(rtc.AudioFrame.create(RATE, 1, 4800))
    queued = source.queued_duration
    for wrong in (rtc.AudioFrame.create(44_100, 1, 441), rtc.AudioFrame.create(RATE, 2, 480)):
        with pytest.raises(ValueError, match="remix_and_resample"):
            await source.capture_frame(wrong)
    with pytest.raises(ValueError, match="AudioFrame"):
        await source.capture_frame(b"\x00" * 960)  # type: ignore[arg-type]
    assert source.queued_duration <= queued  # nothing of the refused frames was queued
    await source.aclose()


async def test_a_synchronizer_fed_faster_than_real_time_holds_its_producer_back() -> None:
    audio = rtc.AudioSource(RATE, 1, queue_size_ms=100)
    video = rtc.VideoSource(16, 16)
    sync = rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=30, video_queue_size_ms=100)
    picture = rtc.VideoFrame(16, 16, rtc.VideoBufferType.I420, bytearray(16 * 16 * 3 // 2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(30):  # one second of media, pushed as fast as push returns
        await sync.push(picture)
        for _ in range(4):
            await sync.push(rtc.AudioFrame.create(RATE, 1, 400))
        assert audio.queued_duration <= 0.1 + 1e-9
    elapsed = loop.time() - started
    # the audio queue (100 ms) and the video queue (3 frames) bound what waits: the producer was slowed
    assert elapsed >= 0.7
    await sync.aclose()
    await audio.aclose()
