"""AudioResampler: sample-rate and channel conversion of a continuous stream with libswresample (PyAV).

livekit's resampler is soxr; PyAV's FFmpeg build has no soxr, so the quality levels
map onto libswresample's windowed-sinc filter length (longer = sharper cut-off,
more CPU), which covers the same range from "quick" to "very high".
"""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING

import numpy as np

from .audio_frame import AudioFrame, validate_audio_format

if TYPE_CHECKING:
    import av

__all__ = ["AudioResampler", "AudioResamplerQuality"]


@enum.unique
class AudioResamplerQuality(enum.StrEnum):
    """How hard the resampler works (livekit's names)."""

    QUICK = "quick"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"


# libswresample options per quality: filter_size taps per phase, phase_shift log2 phases
_SWR_OPTIONS: dict[AudioResamplerQuality, dict[str, str]] = {
    AudioResamplerQuality.QUICK: {"filter_size": "8", "phase_shift": "8"},
    AudioResamplerQuality.LOW: {"filter_size": "16", "phase_shift": "10"},
    AudioResamplerQuality.MEDIUM: {"filter_size": "32", "phase_shift": "10"},
    AudioResamplerQuality.HIGH: {"filter_size": "64", "phase_shift": "12"},
    AudioResamplerQuality.VERY_HIGH: {"filter_size": "128", "phase_shift": "14", "cutoff": "0.98"},
}

_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class AudioResampler:
    """Resamples a stream of int16 interleaved audio from ``input_rate`` to ``output_rate``.

    :meth:`push` takes frames (or raw int16 bytes) in order and returns what is ready;
    :meth:`flush` returns the filter's tail at the end of the stream. The filter
    state carries over between pushes, so a stream cut into frames resamples
    without clicks at the frame edges. ``output_channels`` (default: the input's)
    remixes as well. Not thread-safe across concurrent pushes (a lock serialises them).
    """

    def __init__(
        self,
        input_rate: int,
        output_rate: int,
        *,
        num_channels: int = 1,
        quality: AudioResamplerQuality = AudioResamplerQuality.MEDIUM,
        output_channels: int | None = None,
    ) -> None:
        self._input_rate, self._num_channels = validate_audio_format(input_rate, num_channels)
        self._output_rate, self._output_channels = validate_audio_format(
            output_rate, num_channels if output_channels is None else output_channels
        )
        try:
            quality = AudioResamplerQuality(quality)
        except ValueError:
            names = ", ".join(q.value for q in AudioResamplerQuality)
            raise ValueError(f"expected quality to be an AudioResamplerQuality ({names}), got {quality!r}") from None
        self._quality = quality
        self._lock = threading.Lock()
        self._pts = 0
        self._new_resampler()

    def _new_resampler(self) -> None:
        # PyAV loads with the first resampler, not with kitewire.rtc
        import av

        self._resampler = av.AudioResampler(
            format="s16",
            layout=_LAYOUTS[self._output_channels],
            rate=self._output_rate,
            options=_SWR_OPTIONS[self._quality],
        )
        self._pts = 0

    @property
    def input_rate(self) -> int:
        """Sample rate pushed in."""
        return self._input_rate

    @property
    def output_rate(self) -> int:
        """Sample rate coming out."""
        return self._output_rate

    def push(self, data: bytearray | bytes | AudioFrame) -> list[AudioFrame]:
        """Resample the next piece of the stream; returns zero or more output frames."""
        if isinstance(data, AudioFrame):
            if (data.sample_rate, data.num_channels) != (self._input_rate, self._num_channels):
                raise ValueError(
                    f"expected frames at {self._input_rate} Hz x {self._num_channels} channels, "
                    f"got {data.sample_rate} Hz x {data.num_channels}"
                )
            raw: bytes | bytearray | memoryview = data.data.cast("B")
        elif isinstance(data, bytes | bytearray):
            if len(data) % (2 * self._num_channels):
                raise ValueError(
                    f"expected whole int16 samples for {self._num_channels} channels "
                    f"(a multiple of {2 * self._num_channels} bytes), got {len(data)} bytes"
                )
            raw = data
        else:
            raise ValueError(f"expected an AudioFrame, bytes or bytearray, got {type(data).__name__}")
        samples = len(raw) // (2 * self._num_channels)
        if samples == 0:
            return []
        import av

        array = np.frombuffer(raw, dtype=np.int16).reshape(1, samples * self._num_channels)
        frame = av.AudioFrame.from_ndarray(array, format="s16", layout=_LAYOUTS[self._num_channels])
        frame.sample_rate = self._input_rate
        with self._lock:
            frame.pts = self._pts
            self._pts += samples
            return [self._to_frame(out) for out in self._resampler.resample(frame)]

    def flush(self) -> list[AudioFrame]:
        """The rest of the stream (the filter's delay); the resampler then starts over."""
        import av

        with self._lock:
            try:
                out = [self._to_frame(frame) for frame in self._resampler.resample(None)]
            except (ValueError, av.error.FFmpegError):
                out = []  # nothing was ever pushed
            self._new_resampler()
        return [frame for frame in out if frame.samples_per_channel]

    def _to_frame(self, frame: av.AudioFrame) -> AudioFrame:
        data = bytearray(frame.to_ndarray().tobytes())
        return AudioFrame(data, self._output_rate, self._output_channels, frame.samples)
