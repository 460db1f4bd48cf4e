"""AudioStream: an async iterator of PCM frames from an audio track, at the format the reader asks for."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from kitewire.frames import TrackKind
from kitewire.frames.audio_frame import AudioFrame, validate_audio_format
from kitewire.frames.audio_resampler import AudioResampler
from kitewire.media.packet_trailer import FrameMetadata

from ._track_stream import TrackStream
from .participant import Participant
from .track import Track

_MAX_FRAME_SIZE_MS = 1000
_DEFAULT_FRAME_MS = 10


@dataclass
class AudioFrameEvent:
    """One frame out of an :class:`AudioStream`."""

    frame: AudioFrame


@dataclass
class NoiseCancellationOptions:
    """Options for a platform noise-cancellation module (livekit's name).

    kitewire loads no audio-filter plug-ins: a stream given these options yields
    the audio unfiltered (documented no-op). A livekit ``FrameProcessor`` given as
    ``noise_cancellation`` instead is run on every frame.
    """

    module_id: str
    options: dict[str, Any] = field(default_factory=dict)


class AudioFrameProcessor(Protocol):
    """What livekit's ``FrameProcessor[AudioFrame]`` offers an AudioStream (duck-typed: no livekit import)."""

    def _process(self, frame: AudioFrame) -> AudioFrame: ...

    def _close(self) -> None: ...


class AudioFilter:
    """A platform audio-filter plug-in (livekit's name); kitewire loads none, so this is a
    documented no-op that remembers what it was given."""

    def __init__(self, module_id: str, path: str, dependencies: list[str] | None = None) -> None:
        self.module_id = module_id
        self.path = path
        self.dependencies = list(dependencies or [])


class AudioStream(TrackStream[AudioFrameEvent]):
    """PCM of an audio track as :class:`AudioFrameEvent`, via ``async for``.

    Frames are resampled and remixed to ``sample_rate`` and ``num_channels``
    (libswresample, state kept across frames) and cut into ``frame_size_ms`` pieces
    (None: 10 ms, as livekit's streams yield).
    ``capacity`` > 0 keeps only the newest ``capacity`` frames. Iteration ends after
    :meth:`aclose`, when the track is unsubscribed or unpublished, and when the room
    disconnects; :meth:`from_participant` follows a participant across republishes.
    Several streams on one remote track share its single decoder.
    """

    def __init__(
        self,
        track: Track,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: NoiseCancellationOptions | AudioFrameProcessor | None = None,
        auto_close_noise_cancellation: bool = True,
        **kwargs: Any,
    ) -> None:
        self._sample_rate, self._num_channels = validate_audio_format(sample_rate, num_channels)
        if frame_size_ms is not None and (
            isinstance(frame_size_ms, bool)
            or not isinstance(frame_size_ms, int)
            or not 1 <= frame_size_ms <= _MAX_FRAME_SIZE_MS
        ):
            raise ValueError(
                f"expected frame_size_ms to be None or an int 1..{_MAX_FRAME_SIZE_MS}, got {frame_size_ms!r}"
            )
        processor: Any = None
        if noise_cancellation is not None and not isinstance(noise_cancellation, NoiseCancellationOptions):
            if not callable(getattr(noise_cancellation, "_process", None)):
                raise ValueError(
                    "expected noise_cancellation to be None, NoiseCancellationOptions or a FrameProcessor "
                    f"(with _process(frame)), got {type(noise_cancellation).__name__}"
                )
            processor = noise_cancellation
        super().__init__(track, loop, capacity, kwargs)
        # livekit's native streams yield 10 ms frames when no size is asked for
        self._frame_samples = self._sample_rate * (frame_size_ms or _DEFAULT_FRAME_MS) // 1000
        self._resampler: AudioResampler | None = None
        self._input_format: tuple[int, int] | None = None
        self._pending = bytearray()
        self.noise_cancellation = noise_cancellation
        # a livekit FrameProcessor (e.g. a noise-cancellation plug-in's): run on every frame
        self._processor = processor
        self._processor_auto_close = auto_close_noise_cancellation
        self._start()

    @classmethod
    def from_participant(
        cls,
        *,
        participant: Participant,
        track_source: int,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: NoiseCancellationOptions | AudioFrameProcessor | None = None,
        auto_close_noise_cancellation: bool = True,
    ) -> AudioStream:
        """A stream that follows ``participant``'s audio track of ``track_source`` (across republishes)."""
        return AudioStream(
            track=None,  # type: ignore[arg-type]
            loop=loop,
            capacity=capacity,
            sample_rate=sample_rate,
            num_channels=num_channels,
            frame_size_ms=frame_size_ms,
            noise_cancellation=noise_cancellation,
            participant=participant,
            track_source=track_source,
        )

    @classmethod
    def from_track(
        cls,
        *,
        track: Track,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: NoiseCancellationOptions | AudioFrameProcessor | None = None,
        auto_close_noise_cancellation: bool = False,
    ) -> AudioStream:
        """A stream of ``track``'s audio."""
        return AudioStream(
            track=track,
            loop=loop,
            capacity=capacity,
            sample_rate=sample_rate,
            num_channels=num_channels,
            frame_size_ms=frame_size_ms,
            noise_cancellation=noise_cancellation,
        )

    @property
    def sample_rate(self) -> int:
        """Sample rate of the frames yielded."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channels of the frames yielded."""
        return self._num_channels

    def _accepts(self, track: Track) -> bool:
        return int(track.kind) == int(TrackKind.KIND_AUDIO)

    async def _prepare(self, event: AudioFrameEvent) -> AudioFrameEvent:
        processor = self._processor
        if processor is None or not getattr(processor, "enabled", True):
            return event
        # plug-in processing may be heavy: a worker thread, as for video conversions
        frame = await self._loop.run_in_executor(None, processor._process, event.frame)
        return AudioFrameEvent(frame)

    async def aclose(self) -> None:
        """Stop the stream; iteration ends at once (a frame processor given is closed when asked to be)."""
        await super().aclose()
        processor, self._processor = self._processor, None
        if processor is not None and self._processor_auto_close and callable(getattr(processor, "_close", None)):
            processor._close()

    def _on_track_frame(
        self, frame: AudioFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        if self._closed:
            return
        pcm: bytes | memoryview
        if (frame.sample_rate, frame.num_channels) == (self._sample_rate, self._num_channels):
            pcm = frame.data.cast("B")
        else:
            if self._resampler is None or self._input_format != (frame.sample_rate, frame.num_channels):
                self._resampler = AudioResampler(
                    frame.sample_rate,
                    self._sample_rate,
                    num_channels=frame.num_channels,
                    output_channels=self._num_channels,
                )
                self._input_format = (frame.sample_rate, frame.num_channels)
            pcm = b"".join(bytes(out.data.cast("B")) for out in self._resampler.push(frame))
        self._pending += pcm
        size = self._frame_samples * self._num_channels * 2
        while len(self._pending) >= size:
            self._emit(bytes(self._pending[:size]))
            del self._pending[:size]

    def _emit(self, pcm: bytes) -> None:
        samples = len(pcm) // (2 * self._num_channels)
        self._deliver(AudioFrameEvent(AudioFrame(bytearray(pcm), self._sample_rate, self._num_channels, samples)))

    def __repr__(self) -> str:
        return (
            f"rtc.AudioStream(sample_rate={self._sample_rate}, num_channels={self._num_channels}, "
            f"capacity={self._capacity}, closed={self._closed})"
        )
