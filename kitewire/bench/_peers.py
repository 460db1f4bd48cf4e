"""Child processes of the end-to-end and memory benchmarks: one publisher or one subscriber.

Run as ``python -m kitewire.bench._peers publish|subscribe --sdk kitewire|official ...``.
Each peer is its own process so the parent can read its CPU time and RSS from
/proc without the other peer (or the server) mixed in. A peer talks to the
parent with one JSON object per line on stdout; the subscriber stops when its
stdin closes, the publisher after ``--seconds`` of capturing.

Frames carry their capture counter in their pixels (the pattern of
:mod:`kitewire.demo`); the publisher reports ``time.monotonic_ns()`` taken just
before each ``capture_frame`` and the subscriber the same clock as each frame is
yielded. CLOCK_MONOTONIC is system-wide, so the difference is the latency.

The official ``livekit`` SDK is imported only when ``--sdk official`` asks for
it: it is the anchor the benchmark compares against, never a kitewire dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import colorsys
import contextlib
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kitewire.frames import VideoBufferType, VideoFrame
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter

SDKS = ("kitewire", "official")
CODECS = ("VP8", "H264")
BACKGROUND_FRAMES = 30
LOOP_PROBE_INTERVAL_S = 0.01
BITRATE = 2_000_000
COUNTER_MODULO = 4096  # kitewire.demo's pattern carries 12 bits of counter


def emit(event: str, **fields: Any) -> None:
    """One line of JSON to the parent."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def sdk_module(name: str) -> Any:
    """``livekit.rtc`` for "official", ``kitewire.rtc`` for "kitewire" (the same names)."""
    if name == "official":
        from livekit import rtc as official

        return official
    if name != "kitewire":
        raise ValueError(f"expected sdk 'official' or 'kitewire', got {name!r}")
    from kitewire import rtc

    return rtc


class PatternStamper:
    """Moving pattern frames with a capture counter, cheap enough to make at 30 fps.

    Drawing a full pattern frame costs milliseconds, which would count as the
    publisher's CPU; instead a few backgrounds are drawn up front and each
    capture only copies one into a reused buffer and repaints the counter band.
    The band for a counter is taken from a tiny pattern frame, so the encoding
    stays exactly the one :func:`kitewire.frames.pattern.read_frame_counter` reads.

    With ``noise`` the backgrounds are random pixels instead: nothing to predict
    or compress, so the encoder spends every bit it may (a high packet rate).
    """

    def __init__(self, width: int, height: int, *, noise: bool = False) -> None:
        self.width = width
        self.height = height
        if noise:
            rng = np.random.default_rng(8)
            size = width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)
            self._backgrounds = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(BACKGROUND_FRAMES)]
        else:
            backgrounds = [make_pattern_frame(index, width, height) for index in range(BACKGROUND_FRAMES)]
            self._backgrounds = [np.frombuffer(bytes(frame.data), dtype=np.uint8) for frame in backgrounds]
        self.buffer = np.empty_like(self._backgrounds[0])
        self._luma = self.buffer[: width * height].reshape(height, width)
        self._band = height // 4
        self._block = width // 16

    def stamp(self, index: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Fill :attr:`buffer` with frame ``index`` (I420) and return it."""
        np.copyto(self.buffer, self._backgrounds[index % BACKGROUND_FRAMES])
        levels = _band_levels()[index % COUNTER_MODULO]
        for bit in range(16):
            self._luma[: self._band, bit * self._block : (bit + 1) * self._block] = levels[bit]
        return self.buffer


@functools.lru_cache(maxsize=1)
def _band_levels() -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The 16 block levels of every counter's band, read off tiny pattern frames once
    (about 0.1 s) so the capture loop does not draw one per frame."""
    levels = np.empty((COUNTER_MODULO, 16), dtype=np.uint8)
    for counter in range(COUNTER_MODULO):
        tiny = make_pattern_frame(counter, 32, 16)
        levels[counter] = np.frombuffer(bytes(tiny.data[:32]), dtype=np.uint8)[0:32:2]
    return levels


def counter_of(width: int, height: int, buffer_type: int, data: Any) -> int | None:
    """The pattern counter of a received frame, or None when unreadable."""
    try:
        return read_frame_counter(VideoFrame(width, height, buffer_type, data))
    except ValueError:
        return None


def stdin_closed(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """A future set when the parent closes our stdin (its signal to stop).

    A daemon thread waits on the pipe, so a peer that ends on its own is never
    held up at exit by a reader blocked in the executor.
    """
    closed: asyncio.Future[None] = loop.create_future()

    def mark_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    def wait() -> None:
        sys.stdin.read()
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            loop.call_soon_threadsafe(mark_closed)

    threading.Thread(target=wait, name="stdin-watch", daemon=True).start()
    return closed


# -- publisher ------------------------------------------------------------------


async def publish(args: argparse.Namespace) -> None:
    """Publish the counter pattern at ``args.fps`` until stdin closes; report every capture time."""
    loop = asyncio.get_running_loop()
    stamper = PatternStamper(args.width, args.height, noise=args.noise)
    if read_frame_counter(VideoFrame(args.width, args.height, VideoBufferType.I420, stamper.stamp(1234))) != 1234:
        raise RuntimeError("the stamped counter band does not read back")
    capture: Callable[[np.ndarray[Any, np.dtype[np.uint8]], int], None]
    if args.sdk == "kitewire":
        from kitewire import rtc

        room: Any = rtc.Room()
        await asyncio.wait_for(room.connect(args.url, args.token), 30)
        source: Any = rtc.VideoSource(args.width, args.height)
        track: Any = rtc.LocalVideoTrack.create_video_track("bench", source)
        options: Any = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            simulcast=False,
            video_codec=getattr(rtc.VideoCodec, args.codec),
            video_encoding=rtc.VideoEncoding(max_bitrate=args.max_bitrate, max_framerate=args.fps),
        )

        def capture(buffer: np.ndarray[Any, np.dtype[np.uint8]], timestamp_us: int) -> None:
            source.capture_frame(
                VideoFrame(args.width, args.height, VideoBufferType.I420, buffer),
                timestamp_us=timestamp_us,
            )

    else:
        from livekit import rtc as lk

        room = lk.Room()
        await asyncio.wait_for(room.connect(args.url, args.token), 30)
        source = lk.VideoSource(args.width, args.height)
        track = lk.LocalVideoTrack.create_video_track("bench", source)
        options = lk.TrackPublishOptions(
            source=lk.TrackSource.SOURCE_CAMERA,
            simulcast=False,
            video_codec=getattr(lk.VideoCodec, args.codec),
            video_encoding=lk.VideoEncoding(max_bitrate=args.max_bitrate, max_framerate=args.fps),
        )

        def capture(buffer: np.ndarray[Any, np.dtype[np.uint8]], timestamp_us: int) -> None:
            # livekit copies the pixels during the call, so the buffer can be reused
            frame = lk.VideoFrame(args.width, args.height, lk.VideoBufferType.I420, buffer.data)
            source.capture_frame(frame, timestamp_us=timestamp_us)

    captures: list[tuple[int, int]] = []
    hue_canvas = np.zeros(args.width * args.height * 4, dtype=np.uint8)
    stop = stdin_closed(loop)
    try:
        await asyncio.wait_for(room.local_participant.publish_track(track, options), 30)
        emit("published")
        start = time.monotonic()
        emit("capturing", start_ns=time.monotonic_ns())
        index = 0
        next_report = start + args.report_interval
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= args.seconds or stop.done():
                break
            if args.report_interval > 0 and time.monotonic() >= next_report:
                # long runs: hand the captures over as they come instead of keeping them all
                emit("capture_chunk", captures=captures)
                captures.clear()
                next_report += args.report_interval
            if args.busy_draw:
                draw_hue(hue_canvas, index)
            buffer = stamper.stamp(index)
            now_ns = time.monotonic_ns()
            capture(buffer, now_ns // 1000)
            captures.append((index, now_ns))
            index += 1
            await asyncio.sleep(max(0.0, start + index / args.fps - time.monotonic()))
    finally:
        emit("captures", captures=captures, skipped=frames_skipped_before_encoding(room))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(room.disconnect(), 10)
        with contextlib.suppress(Exception):
            await source.aclose()


def draw_hue(canvas: np.ndarray[Any, np.dtype[np.uint8]], index: int) -> None:
    """Paint a whole RGBA frame one colour the way livekit's ``publish_hue.py`` example does:
    strided writes through ``ndarray.flat``, which hold the GIL for the whole frame."""
    red, green, blue = colorsys.hsv_to_rgb((index / 90.0) % 1.0, 1.0, 1.0)
    for channel, value in enumerate((red * 255, green * 255, blue * 255, 255)):
        canvas.flat[channel::4] = int(value)


def hold_the_gil(seconds: float) -> None:
    """Spin in pure Python for ``seconds`` (the GIL is let go only at the switch interval)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def frames_skipped_before_encoding(room: Any) -> int | None:
    """Captures a kitewire publisher replaced with a newer one before its encoder took them, or None.

    The encoder takes the latest captured frame when it is free, so on a machine
    short of CPU some captures are never encoded; this tells those losses from
    the ones on the way. It reads the engine's pipelines (no public API counts
    them), so any other room, or a changed engine, gives None.
    """
    try:
        return sum(int(pipeline.frames_dropped) for pipeline in room._session._publish_pipelines.values())
    except (AttributeError, TypeError, ValueError):
        return None


# -- subscriber -----------------------------------------------------------------


def _thread_schedstat() -> tuple[int, int]:
    """(ns on a CPU, ns waiting for a CPU while runnable) of the calling thread."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            running, waiting, _ = stat.read().split()
        return int(running), int(waiting)
    except (OSError, ValueError):  # not Linux, or no schedstats: CPU time only
        return time.thread_time_ns(), 0


async def probe_loop_lag(lags: list[tuple[int, float, float, float]]) -> None:
    """Record how late the event loop wakes a task that sleeps LOOP_PROBE_INTERVAL_S.

    Each entry is (wake time ns, lateness ms, ms the loop's thread ran, ms it
    waited for a CPU while runnable). A late wake with the thread running points
    at long callbacks on the loop, one with it waiting for a CPU at a machine
    short of cores, and one with neither at waiting for the GIL held by another
    thread (or another blocking call).
    """
    while True:
        before, (ran_before, queued_before) = time.monotonic_ns(), _thread_schedstat()
        await asyncio.sleep(LOOP_PROBE_INTERVAL_S)
        after, (ran_after, queued_after) = time.monotonic_ns(), _thread_schedstat()
        lateness = max(0.0, (after - before) / 1e6 - LOOP_PROBE_INTERVAL_S * 1e3)
        lags.append(
            (
                after,
                lateness,
                (ran_after - ran_before) / 1e6,
                (queued_after - queued_before) / 1e6,
            )
        )


async def subscribe(args: argparse.Namespace) -> None:
    """Subscribe to the first track and read it as told until stdin closes; report every yield."""
    loop = asyncio.get_running_loop()
    subscribed: asyncio.Future[Any] = loop.create_future()

    def on_track_subscribed(track: Any, publication: Any, participant: Any) -> None:
        # the publisher publishes a single video track
        if not subscribed.done():
            subscribed.set_result(track)

    official = args.sdk == "official"
    if official:
        from livekit import rtc as lk

        room: Any = lk.Room()
        room.on("track_subscribed", on_track_subscribed)
        await asyncio.wait_for(room.connect(args.url, args.token), 30)
    else:
        from kitewire import rtc

        room = rtc.Room()
        room.on("track_subscribed", on_track_subscribed)
        await asyncio.wait_for(room.connect(args.url, args.token), 30)
    emit("connected")
    frames: list[tuple[int, int, int]] = []  # (yield ns, counter or -1, width)
    lags: list[tuple[int, float, float, float]] = []
    probe = loop.create_task(probe_loop_lag(lags))
    stream: Any = None
    reader: asyncio.Task[None] | None = None
    reporter: asyncio.Task[None] | None = None
    try:
        track = await asyncio.wait_for(subscribed, 60)
        if official:
            stream = lk.VideoStream(track, capacity=args.capacity)
        else:
            stream = rtc.VideoStream(track, capacity=args.capacity)
        emit("subscribed")
        first_frame: asyncio.Future[None] = loop.create_future()

        async def report_chunks() -> None:
            # long runs: hand the yields over as they come instead of keeping them (or the loop lags) all
            while True:
                await asyncio.sleep(args.report_interval)
                emit("frame_chunk", frames=frames)
                frames.clear()
                lags.clear()

        if args.report_interval > 0:
            reporter = loop.create_task(report_chunks())

        async def read_frames() -> None:
            async for event in stream:
                now_ns = time.monotonic_ns()
                frame = event.frame
                counter = counter_of(frame.width, frame.height, int(frame.type), frame.data)
                frames.append((now_ns, -1 if counter is None else counter, frame.width))
                if not first_frame.done():
                    first_frame.set_result(None)
                    emit("first_frame")
                if args.busy_ms > 0:
                    hold_the_gil(args.busy_ms / 1000)
                if args.read_interval > 0:
                    await asyncio.sleep(args.read_interval)

        if args.read_interval >= 0:
            reader = loop.create_task(read_frames())
        # the parent closes our stdin when the run is over
        await stdin_closed(loop)
        end_age_frame: tuple[int, int] | None = None
        for task in (reader, reporter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # one more read shows how old the frame waiting in the stream is
        try:
            event = await asyncio.wait_for(stream.__anext__(), 2)
            frame = event.frame
            counter = counter_of(frame.width, frame.height, int(frame.type), frame.data)
            if counter is not None:
                end_age_frame = (time.monotonic_ns(), counter)
        except (TimeoutError, StopAsyncIteration):
            pass
        emit("frames", frames=frames, lags=lags, final_read=end_age_frame)
    finally:
        probe.cancel()
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(room.disconnect(), 10)


def main(argv: list[str] | None = None) -> int:
    """Entry point of one peer process; returns its exit status."""
    parser = argparse.ArgumentParser(prog="python -m kitewire.bench._peers")
    parser.add_argument("role", choices=("publish", "subscribe"))
    parser.add_argument("--sdk", choices=SDKS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--codec", choices=CODECS, default="VP8")
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="publisher: longest time to capture (it also stops when stdin closes)",
    )
    parser.add_argument("--capacity", type=int, default=0, help="subscriber: VideoStream capacity")
    parser.add_argument(
        "--read-interval",
        type=float,
        default=0.0,
        help="subscriber: pause after each frame read (0 reads as fast as frames come, <0 never reads)",
    )
    parser.add_argument("--max-bitrate", type=int, default=BITRATE, help="publisher: encoder cap in bps")
    parser.add_argument("--noise", action="store_true", help="publisher: random pixels around the counter band")
    parser.add_argument(
        "--busy-draw",
        action="store_true",
        help="publisher: before each capture, paint a 4-byte frame with GIL-holding strided writes (publish_hue)",
    )
    parser.add_argument(
        "--busy-ms",
        type=float,
        default=0.0,
        help="subscriber: hold the GIL this long in pure Python after each frame read",
    )
    parser.add_argument(
        "--report-interval",
        type=float,
        default=0.0,
        help="seconds between chunks of captures/yields sent as they come (0: all in the final report)",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(publish(args) if args.role == "publish" else subscribe(args))
    except Exception as error:
        emit("error", message=f"{type(error).__name__}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
