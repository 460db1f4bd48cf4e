"""AudioSource: where an application hands PCM to be published, played out in real time."""

from __future__ import annotations

import asyncio
import time

from kitewire.frames.audio_frame import AudioFrame, validate_audio_format
from kitewire.frames.audio_playout import AudioPlayout

from ._fanout import FrameFanout, running_loop

_MIN_QUEUE_MS = 10
_MAX_QUEUE_MS = 60_000


class AudioSource:
    """A real-time source of PCM audio for a :class:`~kitewire.rtc.LocalAudioTrack`.

    :meth:`capture_frame` appends a frame to a queue of at most ``queue_size_ms``
    milliseconds; the queue is played out in real time in 10 ms chunks to the
    published track and any AudioStream on it. When a frame does not fit,
    ``capture_frame`` waits until enough has played out (back-pressure), so a
    producer faster than real time (a file, a TTS engine) is slowed to real time
    and memory stays bounded. Frames must have the source's sample rate and channel
    count (a ValueError says what was expected).

    With the engine in its media process, a published track gets each frame as it is
    captured and the media process plays it out on its own schedule: audio captured
    ahead keeps flowing to subscribers while the application's own code holds the GIL.
    """

    def __init__(
        self,
        sample_rate: int,
        num_channels: int,
        queue_size_ms: int = 1000,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._sample_rate, self._num_channels = validate_audio_format(sample_rate, num_channels)
        if (
            isinstance(queue_size_ms, bool)
            or not isinstance(queue_size_ms, int)
            or not _MIN_QUEUE_MS <= queue_size_ms <= _MAX_QUEUE_MS
        ):
            raise ValueError(
                f"expected queue_size_ms to be an int from {_MIN_QUEUE_MS} to {_MAX_QUEUE_MS}, got {queue_size_ms!r}"
            )
        self._loop = loop or running_loop() or asyncio.get_event_loop()
        self._capacity_samples = self._sample_rate * queue_size_ms // 1000
        self._fanout: FrameFanout[AudioFrame] = FrameFanout()
        # bounded by capture_frame's back-pressure (a frame longer than the queue still goes in whole)
        self._playout = AudioPlayout(
            self._sample_rate,
            self._num_channels,
            None,
            self._emit,
            on_played=self._notify_space,
            on_drained=self._release,
        )
        self._space = asyncio.Condition()
        self._drained: asyncio.Event | None = None
        self._closed = False
        self.frames_captured = 0

    @property
    def sample_rate(self) -> int:
        """Samples per second per channel of the frames this source takes."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channels of the frames this source takes."""
        return self._num_channels

    @property
    def queued_duration(self) -> float:
        """Seconds of audio captured but not yet played out."""
        return self._playout.queued_samples / self._sample_rate

    def _first_queued_due(self) -> float:
        """When (``time.monotonic()``) the first queued sample plays out (the AVSynchronizer's clock)."""
        return self._playout.first_queued_due()

    async def capture_frame(self, frame: AudioFrame) -> None:
        """Queue ``frame`` for playout, waiting while the queue is too full to take it.

        A frame longer than the whole queue waits for the queue to empty. Returns
        once the frame is queued (use :meth:`wait_for_playout` to wait until heard).
        """
        if not isinstance(frame, AudioFrame):
            raise ValueError(f"expected a kitewire AudioFrame, got {type(frame).__name__}")
        if (frame.sample_rate, frame.num_channels) != (self._sample_rate, self._num_channels):
            raise ValueError(
                f"expected frames at {self._sample_rate} Hz x {self._num_channels} channels (the source's format), "
                f"got {frame.sample_rate} Hz x {frame.num_channels}; resample with frame.remix_and_resample"
            )
        if frame.samples_per_channel == 0 or self._closed:
            return
        samples = frame.samples_per_channel
        playout = self._playout
        async with self._space:
            await self._space.wait_for(
                lambda: (
                    self._closed
                    or not playout.queued_samples
                    or playout.queued_samples + samples <= self._capacity_samples
                )
            )
            if self._closed:
                return
            if self._fanout.pacing_sinks():
                # the media process plays this out itself, without waiting for this loop
                self._fanout.push(frame, time.time_ns() // 1000, 0, pacing=True)
            playout.push(frame.data.cast("B"))
            self.frames_captured += 1
        if self._drained is None:
            self._drained = asyncio.Event()

    def _emit(self, pcm: bytes, samples: int, timestamp_us: int) -> None:
        if self._fanout.has_sinks:
            frame = AudioFrame(bytearray(pcm), self._sample_rate, self._num_channels, samples)
            self._fanout.push(frame, timestamp_us, 0, pacing=False)

    def clear_queue(self) -> None:
        """Drop everything not yet played out; :meth:`wait_for_playout` returns."""
        self._playout.clear()
        for sink in self._fanout.pacing_sinks():
            clear = getattr(sink, "clear_audio", None)
            if clear is not None:
                clear()
        self._release()

    async def wait_for_playout(self) -> None:
        """Wait until everything captured so far has been played out."""
        drained = self._drained
        if drained is not None and self._playout.queued_samples:
            await drained.wait()

    def _release(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None
        self._loop.create_task(self._notify_space())

    async def _notify_space(self) -> None:
        async with self._space:
            self._space.notify_all()

    async def aclose(self) -> None:
        """Stop the source: queued audio is dropped, local streams on it end, later frames are ignored."""
        self._closed = True
        await self._playout.aclose()
        self._release()
        self._fanout.end()

    def __repr__(self) -> str:
        return f"rtc.AudioSource(sample_rate={self._sample_rate}, num_channels={self._num_channels})"
