"""AudioPlayout: a bounded queue of PCM played out in real time, in 10 ms chunks, on an event loop.

The rtc AudioSource plays its queue out with one (to its local streams, and to the
encoder when the engine runs in the application), and the media process with
another for a published track whose captured audio crossed to it at capture time:
there the pacing needs no GIL of the application, so audio captured ahead keeps
flowing while the application's own code is busy.

Chunks are stamped with their place on the playout schedule (wall-clock µs of the
schedule's start plus the samples played), not with when the loop got to them: a
stalled loop delays chunks but leaves their timestamps, and so the RTP clock,
continuous. A new schedule (after the queue ran dry) starts from the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

__all__ = ["CHUNK_MS", "AudioPlayout"]

# the queue is played out in chunks of this many milliseconds, as livekit's native source does
CHUNK_MS = 10
# a pacer this far behind its schedule (a long-stalled loop) starts a new schedule; less than
# this it catches up in a burst, so the stream stays continuous and receivers see no gap in RTP time
_MAX_LATENESS = 0.5

#: ``emit(pcm, samples_per_channel, timestamp_us)`` for each chunk played out
ChunkSink = Callable[[bytes, int, int], None]


class AudioPlayout:
    """Int16 interleaved PCM of one format, queued and played out in real time (see the module docstring).

    ``capacity_samples`` (per channel) bounds the queue: :meth:`push` beyond it drops
    the oldest samples; None leaves the bound to the caller (the AudioSource waits for
    room first, with :attr:`queued_samples`). ``on_played`` is awaited after every chunk, ``on_drained``
    called when the queue runs dry.
    """

    def __init__(
        self,
        sample_rate: int,
        num_channels: int,
        capacity_samples: int | None,
        emit: ChunkSink,
        *,
        on_played: Callable[[], Awaitable[None]] | None = None,
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        if capacity_samples is not None and capacity_samples <= 0:
            raise ValueError(f"expected a positive queue capacity in samples, got {capacity_samples}")
        self._sample_rate = sample_rate
        self._bytes_per_sample = 2 * num_channels
        self._chunk_samples = max(1, sample_rate * CHUNK_MS // 1000)
        self._capacity_bytes = None if capacity_samples is None else capacity_samples * self._bytes_per_sample
        self._emit = emit
        self._on_played = on_played
        self._on_drained = on_drained
        self._queue = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # when (time.monotonic()) the next chunk is due, while playing out
        self._next_at: float | None = None
        #: samples dropped because the queue was over its capacity
        self.samples_dropped = 0

    @property
    def queued_samples(self) -> int:
        """Samples per channel waiting to be played out."""
        return len(self._queue) // self._bytes_per_sample

    def first_queued_due(self) -> float:
        """When (``time.monotonic()``) the first queued sample is played out: the next chunk's
        place on the schedule, or now while idle or behind it (the next chunk goes at once)."""
        now = time.monotonic()
        due = self._next_at
        return now if due is None or not self._queue else max(now, due)

    def push(self, pcm: bytes | bytearray | memoryview) -> None:
        """Queue ``pcm`` (whole samples) and start playing out if idle (on the loop that plays)."""
        if self._closed:
            return
        self._queue += pcm
        excess = 0 if self._capacity_bytes is None else len(self._queue) - self._capacity_bytes
        if excess > 0:
            excess += -excess % self._bytes_per_sample
            del self._queue[:excess]
            self.samples_dropped += excess // self._bytes_per_sample
        if self._task is None or self._task.done():
            # the schedule starts at this push, not when the loop first runs the task: a producer
            # that pushes on without yielding would otherwise start it late, by a varying amount
            self._next_at = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(self._play_out(self._next_at, time.time_ns() / 1000))

    def clear(self) -> None:
        """Drop everything not yet played out."""
        self._queue.clear()

    async def aclose(self) -> None:
        """Stop: queued audio is dropped, later pushes are ignored."""
        self._closed = True
        self._queue.clear()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _play_out(self, next_at: float, schedule_us: float) -> None:
        chunk_bytes = self._chunk_samples * self._bytes_per_sample
        period = self._chunk_samples / self._sample_rate
        while self._queue and not self._closed:
            self._next_at = next_at
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
            self._next_at = next_at
            if samples:
                self._emit(chunk, samples, round(schedule_us))
            schedule_us += duration * 1e6
            if self._on_played is not None:
                await self._on_played()
        if not self._queue and self._on_drained is not None:
            self._on_drained()
