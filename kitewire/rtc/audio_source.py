"""AudioSource: where an application hands PCM to be published, played out in real time."""

from __future__ import annotations

import asyncio
import contextlib
import time

from kitewire.frames.audio_frame import AudioFrame, validate_audio_format

from ._fanout import FrameFanout, running_loop

# the queue is played out in chunks of this many milliseconds, as livekit's native source does
_CHUNK_MS = 10
# a pacer this far behind its schedule (a long-stalled loop) starts a new schedule; less than
# this it catches up in a burst, so the stream stays continuous and receivers see no gap in RTP time
_MAX_LATENESS = 0.5
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
        self._bytes_per_sample = 2 * self._num_channels
        self._chunk_samples = max(1, self._sample_rate * _CHUNK_MS // 1000)
        self._capacity_samples = self._sample_rate * queue_size_ms // 1000
        self._queue = bytearray()
        self._fanout: FrameFanout[AudioFrame] = FrameFanout()
        self._space = asyncio.Condition()
        self._drained: asyncio.Event | None = None
        self._pacer: asyncio.Task[None] | None = None
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
        return len(self._queue) / self._bytes_per_sample / self._sample_rate

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
        async with self._space:
            await self._space.wait_for(
                lambda: self._closed or not self._queue or self._queued_samples() + samples <= self._capacity_samples
            )
            if self._closed:
                return
            self._queue += frame.data.cast("B")
            self.frames_captured += 1
        if self._drained is None:
            self._drained = asyncio.Event()
        if self._pacer is None or self._pacer.done():
            self._pacer = self._loop.create_task(self._play_out())

    def _queued_samples(self) -> int:
        return len(self._queue) // self._bytes_per_sample

    def clear_queue(self) -> None:
        """Drop everything not yet played out; :meth:`wait_for_playout` returns."""
        self._queue.clear()
        self._release()

    async def wait_for_playout(self) -> None:
        """Wait until everything captured so far has been played out."""
        drained = self._drained
        if drained is not None and self._queue:
            await drained.wait()

    def _release(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None
        self._loop.create_task(self._notify_space())

    async def _notify_space(self) -> None:
        async with self._space:
            self._space.notify_all()

    async def _play_out(self) -> None:
        # Chunks are stamped with their place on the playout schedule (wall-clock µs of the
        # schedule's start plus the samples played), not with when the loop got to them:
        # a stalled loop delays chunks but leaves their timestamps, and so the RTP clock,
        # continuous. A new schedule (after the queue ran dry) starts from the wall clock.
        chunk_bytes = self._chunk_samples * self._bytes_per_sample
        period = self._chunk_samples / self._sample_rate
        next_at = time.monotonic()
        schedule_us = time.time_ns() / 1000
        while self._queue and not self._closed:
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(next_at - now)
                continue
            if now - next_at > _MAX_LATENESS:
                schedule_us += (now - next_at) * 1e6
                next_at = now
            chunk = bytes(self._queue[:chunk_bytes])
            del self._queue[:chunk_bytes]
            samples = len(chunk) // self._bytes_per_sample
            duration = samples / self._sample_rate if samples else period
            next_at += duration
            if self._fanout.has_sinks:
                frame = AudioFrame(bytearray(chunk), self._sample_rate, self._num_channels, samples)
                self._fanout.push(frame, round(schedule_us), 0)
            schedule_us += duration * 1e6
            async with self._space:
                self._space.notify_all()
        if not self._queue:
            self._release()

    async def aclose(self) -> None:
        """Stop the source: queued audio is dropped, local streams on it end, later frames are ignored."""
        self._closed = True
        self._queue.clear()
        if self._pacer is not None:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
        self._release()
        self._fanout.end()

    def __repr__(self) -> str:
        return f"rtc.AudioSource(sample_rate={self._sample_rate}, num_channels={self._num_channels})"
