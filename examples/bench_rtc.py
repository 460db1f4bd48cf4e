"""Benchmark: 720p30 through the embedded kitewire server, kitewire SDK vs the
official livekit SDK (the anchor), both publisher and viewer in this process.

For each SDK: frames received per second, end-to-end latency (capture -> frame
out of VideoStream, matched by the counter drawn in the pixels), event-loop lag
and CPU time per received frame. Bounded: a few seconds per run.

    python examples/bench_rtc.py --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

from kitewire.demo import make_pattern_frame, read_frame_counter
from kitewire.frames import VideoFrame
from kitewire.server import Server, ServerConfig
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

WIDTH, HEIGHT, FPS = 1280, 720, 30


@dataclass
class Result:
    sdk: str
    frames: int
    seconds: float
    latencies_ms: list[float]
    lags_ms: list[float]
    cpu_seconds: float

    @staticmethod
    def _percentile(values: list[float], fraction: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]

    def row(self) -> str:
        fps = self.frames / self.seconds
        cpu_ms = 1000 * self.cpu_seconds / max(1, self.frames)
        return (
            f"{self.sdk:<10} {fps:7.1f} {self._percentile(self.latencies_ms, 0.5):9.1f} "
            f"{self._percentile(self.latencies_ms, 0.95):9.1f} {self._percentile(self.lags_ms, 0.99):10.1f} "
            f"{cpu_ms:12.1f}"
        )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(sdk: Any, name: str, url: str, room_name: str, seconds: float, wrap: Any) -> Result:
    loop = asyncio.get_running_loop()
    viewer, publisher = sdk.Room(), sdk.Room()
    subscribed: asyncio.Future[Any] = loop.create_future()
    def on_track_subscribed(track: Any, publication: Any, participant: Any) -> None:
        if not subscribed.done():
            subscribed.set_result(track)

    viewer.on("track_subscribed", on_track_subscribed)
    source = sdk.VideoSource(WIDTH, HEIGHT)
    frames = [make_pattern_frame(i, WIDTH, HEIGHT) for i in range(90)]
    captured_at: dict[int, float] = {}
    latencies: list[float] = []
    lags: list[float] = []

    async def capture() -> None:
        index = 0
        start = time.monotonic()
        while True:
            captured_at[index % len(frames)] = time.monotonic()
            source.capture_frame(wrap(frames[index % len(frames)]))
            index += 1
            await asyncio.sleep(max(0.0, start + index / FPS - time.monotonic()))

    async def measure_lag() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append((loop.time() - before - 0.005) * 1000)

    tasks: list[asyncio.Task[None]] = []
    try:
        def token(identity: str) -> str:
            return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room_name)

        await viewer.connect(url, token("viewer"))
        await publisher.connect(url, token("publisher"))
        track = sdk.LocalVideoTrack.create_video_track("bench", source)
        await publisher.local_participant.publish_track(
            track, sdk.TrackPublishOptions(source=sdk.TrackSource.SOURCE_CAMERA, simulcast=False)
        )
        tasks.append(loop.create_task(capture()))
        remote = await asyncio.wait_for(subscribed, 20)
        stream = sdk.VideoStream(remote)
        warmup_end = time.monotonic() + 1.0
        frames_in = 0
        cpu_start = 0.0
        start = 0.0
        async with contextlib.AsyncExitStack():
            async for event in stream:
                now = time.monotonic()
                if now < warmup_end:
                    continue
                if not start:
                    start, cpu_start = now, _cpu_seconds()
                    tasks.append(loop.create_task(measure_lag()))
                frames_in += 1
                counter = read_frame_counter(VideoFrame(event.frame.width, event.frame.height, event.frame.type,
                                                        bytes(event.frame.data)))
                if counter is not None and counter in captured_at:
                    latencies.append((now - captured_at[counter]) * 1000)
                if now - start >= seconds:
                    break
        elapsed = time.monotonic() - start
        cpu = _cpu_seconds() - cpu_start
        await stream.aclose()
        return Result(name, frames_in, elapsed, latencies, lags, cpu)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await publisher.disconnect()
        await viewer.disconnect()
        await source.aclose()


async def main(seconds: float) -> None:
    from livekit import rtc as livekit_rtc

    from kitewire import rtc as kitewire_rtc

    def to_livekit(frame: VideoFrame) -> Any:
        return livekit_rtc.VideoFrame(frame.width, frame.height, livekit_rtc.VideoBufferType.I420, bytes(frame.data))

    async with Server(ServerConfig.dev(port=0, log_level="warning")) as server:
        results = [
            await _run(kitewire_rtc, "kitewire", server.url, "bench-kitewire", seconds, lambda f: f),
            await _run(livekit_rtc, "livekit", server.url, "bench-livekit", seconds, to_livekit),
        ]
    print(f"720p30 VP8 through the kitewire server, {seconds:.0f} s per SDK (publisher and viewer in one process)")
    print(f"{'sdk':<10} {'fps':>7} {'p50 ms':>9} {'p95 ms':>9} {'lag p99':>10} {'cpu ms/frame':>12}")
    for result in results:
        print(result.row())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args().seconds))
