"""Publishing and reading counter-stamped video with the official livekit SDK."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np
from livekit import rtc

from .framecode import draw_counter, read_counter


def subscribed_tracks(room: rtc.Room) -> asyncio.Queue[rtc.Track]:
    """Every track ``room`` subscribes to from now on, in the order the SDK reports them."""
    tracks: asyncio.Queue[rtc.Track] = asyncio.Queue()
    room.on("track_subscribed", lambda track, publication, participant: tracks.put_nowait(track))
    return tracks


class CounterPublisher:
    """Publishes a ``VideoSource`` whose frames carry an increasing counter."""

    def __init__(
        self,
        room: rtc.Room,
        width: int,
        height: int,
        *,
        simulcast: bool,
        codec: int,
        fps: float = 30.0,
        max_bitrate: int = 1_500_000,
    ) -> None:
        self.room = room
        self.max_bitrate = max_bitrate
        self.width, self.height = width, height
        self.simulcast, self.codec, self.fps = simulcast, codec, fps
        self.source = rtc.VideoSource(width, height)
        self.sent = 0
        self._task: asyncio.Task[None] | None = None
        self.publication: rtc.LocalTrackPublication | None = None

    async def start(self, name: str = "camera") -> rtc.LocalTrackPublication:
        track = rtc.LocalVideoTrack.create_video_track(name, self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=self.simulcast)
        options.video_codec = self.codec  # type: ignore[assignment]
        # livekit's default preset for 640x480 caps the encoder at 25 fps; ask for
        # the full rate so every counter is encoded and a missing one means a loss.
        options.video_encoding.max_framerate = self.fps
        options.video_encoding.max_bitrate = self.max_bitrate
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.publication = await asyncio.wait_for(self.room.local_participant.publish_track(track, options), 15)
        return self.publication

    async def _run(self) -> None:
        interval = 1.0 / self.fps
        start = time.monotonic()
        counter = 0
        while True:
            frame = draw_counter(counter, self.width, self.height)
            self.source.capture_frame(
                rtc.VideoFrame(self.width, self.height, rtc.VideoBufferType.RGBA, frame.tobytes())
            )
            self.sent = counter + 1
            counter += 1
            delay = start + counter * interval - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class CounterReader:
    """Reads a remote video track, decoding the counter of every frame."""

    def __init__(self, track: rtc.Track) -> None:
        self.counters: list[int] = []
        self.undecodable = 0
        self.sizes: list[tuple[int, int]] = []
        self.ended = asyncio.Event()
        self.first_frame = asyncio.Event()
        self._stream = rtc.VideoStream(track)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._stream:
                frame = event.frame
                self.sizes.append((frame.width, frame.height))
                rgba = frame.convert(rtc.VideoBufferType.RGBA)
                pixels = np.frombuffer(rgba.data, dtype=np.uint8).reshape(rgba.height, rgba.width, 4)
                counter = read_counter(pixels)
                if counter is None:
                    self.undecodable += 1
                else:
                    self.counters.append(counter)
                self.first_frame.set()
        finally:
            self.ended.set()

    def window(self, start_index: int = 0) -> list[int]:
        return self.counters[start_index:]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self._stream.aclose()


def in_order_fraction(counters: list[int]) -> tuple[float, bool]:
    """(distinct counters / span, strictly increasing?) for a received sequence."""
    if len(counters) < 2:
        return 0.0, False
    span = counters[-1] - counters[0] + 1
    increasing = all(b > a for a, b in zip(counters, counters[1:]))
    return len(set(counters)) / span, increasing


_VOICE_RATE = 48000
_VOICE_FRAME = 480  # 10 ms


class Voice:
    """Feeds an official AudioSource in real time: silence, or a 440 Hz tone while ``talking``."""

    def __init__(self) -> None:
        # A short queue: what is captured goes out at once, so 'started talking' is a moment we know.
        self.source = rtc.AudioSource(_VOICE_RATE, 1, queue_size_ms=40)
        self.talking = False
        self.changed_at = time.monotonic()
        t = np.arange(_VOICE_FRAME) / _VOICE_RATE
        self._tone = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16).tobytes()
        self._silence = bytes(2 * _VOICE_FRAME)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def publish(self, room: rtc.Room) -> rtc.LocalAudioTrack:
        """Start feeding and publish the source as ``room``'s microphone."""
        self.start()
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await asyncio.wait_for(room.local_participant.publish_track(track, options), 15)
        return track

    def set_talking(self, talking: bool) -> None:
        self.talking = talking
        self.changed_at = time.monotonic()

    async def _run(self) -> None:
        start = time.monotonic()
        sent = 0
        while True:
            samples = self._tone if self.talking else self._silence
            await self.source.capture_frame(rtc.AudioFrame(samples, _VOICE_RATE, 1, _VOICE_FRAME))
            sent += 1
            delay = start + sent * _VOICE_FRAME / _VOICE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


T = TypeVar("T")


class EventLog(Generic[T]):
    """Every ``event`` of a room as (arrival time, ``convert(*args)``), to wait on."""

    def __init__(self, room: rtc.Room, event: rtc.room.EventTypes, convert: Callable[..., T]) -> None:
        self.events: list[tuple[float, T]] = []
        self._convert = convert
        self._changed = asyncio.Event()
        room.on(event, self._on)

    def _on(self, *args: Any) -> None:
        self.events.append((time.monotonic(), self._convert(*args)))
        self._changed.set()

    async def wait(self, accept: Callable[[T], bool], after: float, timeout: float) -> float:
        """Seconds from ``after`` to the first event since then that ``accept`` takes."""
        deadline = time.monotonic() + timeout
        while True:
            for at, value in self.events:
                if at >= after and accept(value):
                    return at - after
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no such event in {timeout}s: {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
