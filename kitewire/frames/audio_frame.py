"""AudioFrame: PCM audio as livekit carries it (int16 samples, channels interleaved)."""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .audio_resampler import AudioResamplerQuality

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "AudioFrame", "combine_audio_frames", "validate_audio_format"]

_SAMPLE_BYTES = 2
#: Sample rates an AudioFrame may carry (what libswresample and Opus capture handle sensibly).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000
# channels in one frame; livekit's native side mixes at most 8 (7.1)
_MAX_CHANNELS = 8


def _positive_int(label: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected {label} to be a positive int, got {value!r}")
    return value


def validate_audio_format(sample_rate: object, num_channels: object) -> tuple[int, int]:
    """Check a (sample rate, channel count) pair; returns them as ints or raises ValueError."""
    rate = _positive_int("sample_rate", sample_rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"expected sample_rate between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {rate}")
    channels = _positive_int("num_channels", num_channels)
    if channels > _MAX_CHANNELS:
        raise ValueError(f"expected num_channels between 1 and {_MAX_CHANNELS}, got {channels}")
    return rate, channels


class AudioFrame:
    """A frame of 16-bit signed PCM audio, interleaved by channel (livekit's layout).

    ``data`` must hold at least ``num_channels * samples_per_channel`` int16 samples
    and a whole number of samples; anything else is a ValueError naming the sizes.
    The frame keeps a reference to ``data`` (no copy) unless it is immutable
    ``bytes``, which is copied once so that :attr:`data` is writable.
    """

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        sample_rate: int,
        num_channels: int,
        samples_per_channel: int,
        *,
        userdata: dict[str, Any] | None = None,
    ) -> None:
        self._sample_rate, self._num_channels = validate_audio_format(sample_rate, num_channels)
        if isinstance(samples_per_channel, bool) or not isinstance(samples_per_channel, int) or samples_per_channel < 0:
            raise ValueError(f"expected samples_per_channel to be an int >= 0, got {samples_per_channel!r}")
        if isinstance(data, memoryview):
            view = data.cast("B") if data.format != "B" or data.ndim != 1 else data
            buffer: bytearray | memoryview = view if not view.readonly else bytearray(view)
        elif isinstance(data, bytearray):
            buffer = data
        elif isinstance(data, bytes):
            buffer = bytearray(data)
        else:
            raise ValueError(f"expected data to be bytes, bytearray or memoryview, got {type(data).__name__}")
        needed = self._num_channels * samples_per_channel * _SAMPLE_BYTES
        if len(buffer) < needed:
            raise ValueError(
                f"expected at least {needed} bytes of data ({self._num_channels} channels x "
                f"{samples_per_channel} samples x 2 bytes), got {len(buffer)}"
            )
        if len(buffer) % _SAMPLE_BYTES:
            raise ValueError(f"expected data to be whole int16 samples (an even byte count), got {len(buffer)} bytes")
        self._data = buffer
        self._samples_per_channel = samples_per_channel
        self._userdata: dict[str, Any] = {} if userdata is None else userdata

    @staticmethod
    def create(sample_rate: int, num_channels: int, samples_per_channel: int) -> AudioFrame:
        """A silent frame of the given format (zeroed samples)."""
        rate, channels = validate_audio_format(sample_rate, num_channels)
        count = _positive_int("samples_per_channel", samples_per_channel) if samples_per_channel else 0
        return AudioFrame(bytearray(channels * count * _SAMPLE_BYTES), rate, channels, count)

    @staticmethod
    def from_ndarray(array: npt.NDArray[np.int16], sample_rate: int) -> AudioFrame:
        """A frame from an int16 array shaped (samples,) for mono or (samples, channels)."""
        if not isinstance(array, np.ndarray) or array.dtype != np.int16 or array.ndim not in (1, 2):
            raise ValueError(f"expected an int16 array of shape (samples,) or (samples, channels), got {array!r:.80}")
        channels = 1 if array.ndim == 1 else int(array.shape[1])
        samples = int(array.shape[0])
        return AudioFrame(bytearray(np.ascontiguousarray(array).tobytes()), sample_rate, channels, samples)

    @property
    def userdata(self) -> dict[str, Any]:
        """Application data attached to the frame."""
        return self._userdata

    @property
    def data(self) -> memoryview:
        """The samples as a writable int16 memoryview (``np.frombuffer(frame.data, np.int16)`` is a view)."""
        used = self._num_channels * self._samples_per_channel * _SAMPLE_BYTES
        return memoryview(self._data)[:used].cast("h")

    @property
    def sample_rate(self) -> int:
        """Samples per second per channel."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Number of interleaved channels."""
        return self._num_channels

    @property
    def samples_per_channel(self) -> int:
        """Samples per channel in this frame."""
        return self._samples_per_channel

    @property
    def duration(self) -> float:
        """Length of the frame in seconds."""
        return self._samples_per_channel / self._sample_rate

    def to_ndarray(self) -> npt.NDArray[np.int16]:
        """The samples shaped (samples_per_channel, num_channels), a view on the frame's buffer (no copy)."""
        flat = np.frombuffer(self.data, dtype=np.int16)
        return flat.reshape(self._samples_per_channel, self._num_channels)

    def to_wav_bytes(self) -> bytes:
        """The frame as a complete WAV file (16-bit PCM)."""
        with io.BytesIO() as out:
            with wave.open(out, "wb") as wav:
                wav.setnchannels(self._num_channels)
                wav.setsampwidth(_SAMPLE_BYTES)
                wav.setframerate(self._sample_rate)
                wav.writeframes(self.data.cast("B"))
            return out.getvalue()

    def remix_and_resample(
        self, sample_rate: int, num_channels: int, quality: AudioResamplerQuality | None = None
    ) -> AudioFrame:
        """This frame at another sample rate and channel count (libswresample, one shot: no state kept).

        For a continuous stream use an :class:`~kitewire.frames.audio_resampler.AudioResampler`,
        which keeps the filter state between frames.
        """
        from .audio_resampler import AudioResampler, AudioResamplerQuality

        rate, channels = validate_audio_format(sample_rate, num_channels)
        if rate == self._sample_rate and channels == self._num_channels:
            return AudioFrame(bytearray(self.data.cast("B")), rate, channels, self._samples_per_channel)
        resampler = AudioResampler(
            self._sample_rate,
            rate,
            num_channels=self._num_channels,
            output_channels=channels,
            quality=quality or AudioResamplerQuality.MEDIUM,
        )
        return combine_audio_frames(
            [*resampler.push(self), *resampler.flush()], sample_rate=rate, num_channels=channels
        )

    def __repr__(self) -> str:
        return (
            f"rtc.AudioFrame(sample_rate={self._sample_rate}, num_channels={self._num_channels}, "
            f"samples_per_channel={self._samples_per_channel}, duration={self.duration:.3f})"
        )


def combine_audio_frames(
    buffer: AudioFrame | Sequence[AudioFrame], *, sample_rate: int | None = None, num_channels: int | None = None
) -> AudioFrame:
    """One frame holding ``buffer``'s frames one after the other.

    Every frame must share one sample rate and channel count (a ValueError names the
    first that differs). An empty list needs ``sample_rate`` and ``num_channels`` and
    gives an empty frame.
    """
    if isinstance(buffer, AudioFrame):
        return buffer
    frames = list(buffer)
    if not frames:
        if sample_rate is None or num_channels is None:
            raise ValueError("expected at least one AudioFrame to combine, got none")
        rate, channels = validate_audio_format(sample_rate, num_channels)
        return AudioFrame(bytearray(), rate, channels, 0)
    first = frames[0]
    for index, frame in enumerate(frames):
        if not isinstance(frame, AudioFrame):
            raise ValueError(f"expected AudioFrames, got {type(frame).__name__} at index {index}")
        if (frame.sample_rate, frame.num_channels) != (first.sample_rate, first.num_channels):
            raise ValueError(
                f"expected every frame at {first.sample_rate} Hz x {first.num_channels} channels, "
                f"got {frame.sample_rate} Hz x {frame.num_channels} at index {index}"
            )
    data = bytearray(b"".join(frame.data.cast("B") for frame in frames))
    total = sum(frame.samples_per_channel for frame in frames)
    return AudioFrame(data, first.sample_rate, first.num_channels, total)
