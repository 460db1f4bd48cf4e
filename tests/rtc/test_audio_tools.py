"""AudioMixer and AVSynchronizer on their own (no room): mixing sums with saturation, ends when
the inputs do; the synchronizer refuses bad arguments and paces video without audio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from kitewire import rtc

from audio_signal import sine

pytestmark = pytest.mark.asyncio

RATE = 16_000


async def _frames(samples: np.ndarray, step: int = 160) -> AsyncIterator[rtc.AudioFrame]:
    for start in range(0, len(samples) - step + 1, step):
        yield rtc.AudioFrame.from_ndarray(np.ascontiguousarray(samples[start : start + step]), RATE)
        await asyncio.sleep(0)


async def test_mixer_sums_two_tones_and_ends_with_its_inputs() -> None:
    mixer = rtc.AudioMixer(RATE, 1, blocksize=320)
    mixer.add_stream(_frames(sine(440, 1.0, RATE, amplitude=0.3)))
    mixer.add_stream(_frames(sine(1000, 1.0, RATE, amplitude=0.3)))
    mixer.end_input()
    blocks = [block async for block in mixer]
    mixed = np.concatenate([block.to_ndarray()[:, 0] for block in blocks])
    assert all(block.samples_per_channel == 320 for block in blocks)
    assert len(mixed) >= RATE - 320
    spectrum = np.abs(np.fft.rfft(mixed[: RATE // 2].astype(np.float64)))
    freqs = np.fft.rfftfreq(RATE // 2, 1 / RATE)
    peaks = sorted(float(f) for f in freqs[np.argsort(spectrum)[-2:]])
    assert peaks == pytest.approx([440, 1000], abs=3)


async def test_mixer_saturates_instead_of_wrapping() -> None:
    loud = np.full(RATE // 10, 30_000, dtype=np.int16)
    mixer = rtc.AudioMixer(RATE, 1)
    mixer.add_stream(_frames(loud))
    mixer.add_stream(_frames(loud))
    mixer.end_input()
    block = await asyncio.wait_for(mixer.__anext__(), 5)
    assert int(block.to_ndarray().min()) == 32767
    await mixer.aclose()
    with pytest.raises(ValueError, match="capacity"):
        rtc.AudioMixer(RATE, 1, capacity=0)


async def test_synchronizer_refuses_bad_arguments_and_paces_video_alone() -> None:
    audio, video = rtc.AudioSource(48_000, 1), rtc.VideoSource(16, 16)
    with pytest.raises(ValueError, match="video_fps"):
        rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=0)
    with pytest.raises(ValueError, match="AudioSource"):
        rtc.AVSynchronizer(audio_source=video, video_source=video, video_fps=30)  # type: ignore[arg-type]
    sync = rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=50)
    frame = rtc.VideoFrame(16, 16, rtc.VideoBufferType.RGBA, bytearray(16 * 16 * 4))
    started = time.monotonic()
    for _ in range(25):
        await sync.push(frame)
    await sync.wait_for_playout()
    # 25 frames at 50 fps take about half a second: paced, not dumped at once
    assert time.monotonic() - started >= 0.4
    with pytest.raises(ValueError, match="VideoFrame or an AudioFrame"):
        await sync.push(b"frame")  # type: ignore[arg-type]
    await sync.aclose()


class Halver:
    """A FrameProcessor in livekit's shape: halves every sample."""

    enabled = True
    closed = False

    def _process(self, frame: rtc.AudioFrame) -> rtc.AudioFrame:
        return rtc.AudioFrame.from_ndarray((frame.to_ndarray() // 2).astype(np.int16), frame.sample_rate)

    def _close(self) -> None:
        self.closed = True


async def test_a_frame_processor_runs_on_every_frame_and_is_closed_with_the_stream() -> None:
    source = rtc.AudioSource(48_000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("processed", source)
    processor = Halver()
    stream = rtc.AudioStream(track, noise_cancellation=processor)
    await source.capture_frame(rtc.AudioFrame.from_ndarray(np.full(480, 1000, dtype=np.int16), 48_000))
    event = await asyncio.wait_for(stream.__anext__(), 5)
    assert int(event.frame.to_ndarray().max()) == 500
    await stream.aclose()
    assert processor.closed
    with pytest.raises(ValueError, match="FrameProcessor"):
        rtc.AudioStream(track, noise_cancellation=object())  # type: ignore[arg-type]
    # the options of a platform plug-in are accepted and change nothing
    plain = rtc.AudioStream(track, noise_cancellation=rtc.NoiseCancellationOptions("krisp", {}))
    await source.capture_frame(rtc.AudioFrame.from_ndarray(np.full(480, 1000, dtype=np.int16), 48_000))
    assert int((await asyncio.wait_for(plain.__anext__(), 5)).frame.to_ndarray().max()) == 1000
    await plain.aclose()
    await source.aclose()
