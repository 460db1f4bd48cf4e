"""Audio test peers shared by the audio end-to-end tests: play a signal into an AudioSource,
collect what an AudioStream yields, and measure it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from kitewire import rtc

from audio_signal import dominant_frequency, snr_db

RoomFactory = Callable[..., Awaitable[rtc.Room]]
FRAME_MS = 20
RATE = 48_000


async def play(source: Any, signal: npt.NDArray[np.int16], *, frame_ms: int = 10, frame_type: Any = None) -> None:
    """Capture ``signal`` (shape (samples,) or (samples, channels)) into ``source`` (a kitewire or an
    official AudioSource, whose AudioFrame class is ``frame_type``) frame by frame, as fast as the
    source's back-pressure lets it."""
    make = frame_type or rtc.AudioFrame
    channels = 1 if signal.ndim == 1 else signal.shape[1]
    step = source.sample_rate * frame_ms // 1000
    flat = signal.reshape(-1, channels)
    for start in range(0, len(flat) - step + 1, step):
        piece = np.ascontiguousarray(flat[start : start + step])
        await source.capture_frame(make(bytearray(piece.tobytes()), source.sample_rate, channels, step))


@dataclass
class Heard:
    """What a reader of an AudioStream got: the samples and when each frame arrived."""

    frames: list[npt.NDArray[np.int16]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def samples(self) -> npt.NDArray[np.int16]:
        return np.concatenate(self.frames) if self.frames else np.zeros((0, 1), dtype=np.int16)

    def largest_arrival_gap(self) -> float:
        if len(self.arrivals) < 2:
            return float("inf")
        return float(np.max(np.diff(np.array(self.arrivals))))


async def listen(stream: Any, heard: Heard, seconds: float) -> None:
    """Read ``stream`` (a kitewire or an official AudioStream) for ``seconds`` (bounded) into ``heard``."""

    async def read() -> None:
        async for event in stream:
            frame = event.frame
            pcm = np.frombuffer(bytes(frame.data.cast("B")), dtype=np.int16).reshape(-1, frame.num_channels)
            heard.frames.append(pcm)
            heard.arrivals.append(time.monotonic())

    try:
        await asyncio.wait_for(read(), seconds)
    except TimeoutError:
        pass


def sound_start(samples: npt.NDArray[np.int16], threshold: int = 1000) -> int:
    """Index of the first loud sample (where the test tone starts)."""
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > threshold)[0]
    return int(loud[0]) if len(loud) else len(samples)


def windowed_snr(channel: npt.NDArray[np.int16], frequencies: list[float], window: float = 0.5) -> list[float]:
    """SNR of each ``window``-second piece (a lost packet costs only its window's figure)."""
    size = int(RATE * window)
    return [snr_db(channel[i : i + size], RATE, frequencies) for i in range(0, len(channel) - size + 1, size)]


def measured(channel: npt.NDArray[np.int16]) -> float:
    return dominant_frequency(channel, RATE)


async def subscribed_audio(room: Any, timeout: float = 15.0) -> Any:
    """The first remote audio track ``room`` (kitewire or official) is subscribed to (waits, bounded)."""
    found: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def is_audio(track: Any) -> bool:
        return track is not None and int(track.kind) == int(rtc.TrackKind.KIND_AUDIO)

    def on_track(track: Any, *_: object) -> None:
        if is_audio(track) and not found.done():
            found.set_result(track)

    room.on("track_subscribed", on_track)
    for participant in room.remote_participants.values():
        for publication in participant.track_publications.values():
            if is_audio(publication.track) and not found.done():
                found.set_result(publication.track)
    return await asyncio.wait_for(found, timeout)


def check_tone(heard: Heard, seconds: float, frequency: float = 440) -> list[float]:
    """The tone arrived whole (>= 99 % of its 20 ms frames), at ``frequency`` and SNR >= 30 dB;
    returns the per-window SNR figures."""
    samples = heard.samples()[:, 0]
    start = sound_start(samples)
    tone = samples[start : start + int(seconds * RATE)]
    assert len(tone) >= 0.99 * seconds * RATE, f"{len(tone) / RATE:.2f} s of {seconds} s arrived"
    assert measured(tone[RATE : RATE * 3]) == pytest.approx(frequency, abs=1)
    figures = windowed_snr(tone[: int((seconds - 0.5) * RATE)], [frequency])
    assert np.median(figures) >= 30, figures
    # at most one glitch per ten windows (one per 5 s): a glitch shorter than a window
    # spoils two when it falls across their boundary, so adjacent bad windows count once
    assert glitches(figures) <= max(1, len(figures) // 10), figures
    return figures


def glitches(figures: list[float], floor: float = 30) -> int:
    """Glitches in per-window SNR figures: each run of bad windows counts one per two windows."""
    count = run = 0
    for figure in [*figures, floor]:
        if figure < floor:
            run += 1
        else:
            count += (run + 1) // 2
            run = 0
    return count
