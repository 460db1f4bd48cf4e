"""AudioMixer: several async streams of AudioFrames mixed into one (livekit's API)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt

from kitewire.frames.audio_frame import AudioFrame, validate_audio_format

logger = logging.getLogger("kitewire.rtc")


class AudioMixer:
    """Mixes the frames of any number of async iterators of :class:`AudioFrame` into blocks of
    ``blocksize`` samples (default 100 ms), summed with int16 saturation.

    Each round waits up to ``stream_timeout_ms`` for every stream to have a block; a
    stream that is late contributes what it has (padded with silence). Frames must have
    the mixer's sample rate and channel count (others are dropped with a warning). The
    output queue keeps at most ``capacity`` blocks: a slow reader makes the mixer wait.
    :meth:`end_input` lets the streams run out and then ends the iteration; :meth:`aclose`
    ends it at once.
    """

    def __init__(
        self,
        sample_rate: int,
        num_channels: int,
        *,
        blocksize: int = 0,
        stream_timeout_ms: int = 100,
        capacity: int = 100,
    ) -> None:
        self._sample_rate, self._num_channels = validate_audio_format(sample_rate, num_channels)
        if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 0:
            raise ValueError(f"expected blocksize to be an int >= 0 (0: 100 ms), got {blocksize!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"expected capacity to be an int >= 1, got {capacity!r}")
        self._chunk = blocksize or self._sample_rate // 10
        self._timeout = stream_timeout_ms / 1000
        self._buffers: dict[AsyncIterator[AudioFrame], npt.NDArray[np.int16]] = {}
        self._readers: dict[AsyncIterator[AudioFrame], asyncio.Task[None]] = {}
        self._data = asyncio.Condition()
        self._queue: asyncio.Queue[AudioFrame | None] = asyncio.Queue(maxsize=capacity)
        self._ending = False
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._mix())

    def add_stream(self, stream: AsyncIterator[AudioFrame]) -> None:
        """Mix ``stream`` in from now on."""
        if self._closed or self._ending:
            raise RuntimeError("cannot add a stream to a mixer that was closed or told to end")
        if stream in self._readers:
            return
        self._buffers[stream] = np.zeros(0, dtype=np.int16)
        self._readers[stream] = asyncio.get_running_loop().create_task(self._read(stream))

    def remove_stream(self, stream: AsyncIterator[AudioFrame]) -> None:
        """Stop mixing ``stream`` (what it already gave is dropped)."""
        reader = self._readers.pop(stream, None)
        if reader is not None:
            reader.cancel()
        self._buffers.pop(stream, None)

    async def _read(self, stream: AsyncIterator[AudioFrame]) -> None:
        try:
            async for frame in stream:
                if (frame.sample_rate, frame.num_channels) != (self._sample_rate, self._num_channels):
                    logger.warning(
                        "mixer at %d Hz x %d dropped a frame of %d Hz x %d",
                        self._sample_rate,
                        self._num_channels,
                        frame.sample_rate,
                        frame.num_channels,
                    )
                    continue
                samples = np.frombuffer(frame.data, dtype=np.int16)
                async with self._data:
                    if stream in self._buffers:
                        self._buffers[stream] = np.concatenate([self._buffers[stream], samples])
                    self._data.notify_all()
                # a stream faster than the mixer waits for it (memory stays bounded)
                while stream in self._buffers and len(self._buffers[stream]) > 4 * self._chunk * self._num_channels:
                    await asyncio.sleep(self._chunk / self._sample_rate / 2)
        except Exception:
            logger.exception("an audio stream given to the mixer failed")
        finally:
            self._readers.pop(stream, None)
            async with self._data:
                self._data.notify_all()

    def _ready(self, size: int) -> bool:
        return all(len(buffer) >= size for buffer in self._buffers.values())

    async def _mix(self) -> None:
        size = self._chunk * self._num_channels
        try:
            while not self._closed:
                async with self._data:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._data.wait_for(lambda: self._ready(size)), self._timeout)
                    # streams that ended and are drained leave the mix
                    for stream in [s for s, b in self._buffers.items() if s not in self._readers and len(b) == 0]:
                        del self._buffers[stream]
                    if self._ending and not self._buffers:
                        break
                    if not self._buffers:
                        continue
                    mixed = np.zeros(size, dtype=np.int32)
                    for stream, buffer in self._buffers.items():
                        take = buffer[:size]
                        mixed[: len(take)] += take
                        self._buffers[stream] = buffer[size:]
                block = np.clip(mixed, -32768, 32767).astype(np.int16)
                await self._queue.put(
                    AudioFrame(bytearray(block.tobytes()), self._sample_rate, self._num_channels, self._chunk)
                )
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    def __aiter__(self) -> AudioMixer:
        return self

    async def __anext__(self) -> AudioFrame:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        return item

    def end_input(self) -> None:
        """No more streams will be added: mix until the current ones run out, then end."""
        self._ending = True

    async def aclose(self) -> None:
        """Stop mixing now; unread blocks are dropped."""
        self._closed = True
        for reader in list(self._readers.values()):
            reader.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
