"""``kitewire demo``: publish a moving 1280x720@30 test pattern through an embedded
server, receive it in a second participant through VideoStream, print fps,
end-to-end latency and bitrate, and save one received frame as a PNG.

Every frame carries its counter (:mod:`kitewire.frames.pattern`), which the
receiver reads back for the latency of each frame.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kitewire.frames import VideoBufferType, VideoFrame
from kitewire.frames.pattern import make_pattern_frame

# -- the demo command ------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire demo``."""
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to stream (default 5)")
    parser.add_argument(
        "--output", default="kitewire-demo.png", help="where to write one received frame (default kitewire-demo.png)"
    )
    parser.add_argument("--width", type=int, default=1280, help="pattern width (default 1280)")
    parser.add_argument("--height", type=int, default=720, help="pattern height (default 720)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8", help="video codec (default vp8)")


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit status."""
    if args.seconds <= 0:
        print(f"kitewire demo: expected --seconds > 0, got {args.seconds}", file=sys.stderr)
        return 2
    if args.fps <= 0 or args.fps > 120:
        print(f"kitewire demo: expected 0 < --fps <= 120, got {args.fps}", file=sys.stderr)
        return 2
    if args.width < 32 or args.height < 16 or args.width % 2 or args.height % 2:
        print(
            f"kitewire demo: expected an even size of at least 32x16, got {args.width}x{args.height}", file=sys.stderr
        )
        return 2
    try:
        summary = asyncio.run(run_demo(args.seconds, args.output, args.width, args.height, args.fps, args.codec))
    except DemoError as exc:
        print(f"kitewire demo: {exc}", file=sys.stderr)
        return 1
    return 0 if summary["frames_received"] > 0 else 1


class DemoError(Exception):
    """The demo could not run (server, connection or media failure)."""


def _write_png(frame: VideoFrame, path: str) -> None:
    import cv2

    rgb = frame.convert(VideoBufferType.RGB24)
    array = np.frombuffer(bytes(rgb.data), dtype=np.uint8).reshape(rgb.height, rgb.width, 3)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(array, cv2.COLOR_RGB2BGR)):
        raise DemoError(f"could not write {path}")


async def run_demo(
    seconds: float, output: str, width: int, height: int, fps: float, codec: str, *, quiet: bool = False
) -> dict[str, Any]:
    """Publish a pattern through an embedded server and receive it; returns figures."""
    from kitewire import rtc
    from kitewire.server import Server, ServerConfig
    from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

    loop = asyncio.get_running_loop()
    async with Server(ServerConfig.dev(port=0, log_level="warning")) as server:
        url = server.url
        api_key, api_secret = DEV_API_KEY, DEV_API_SECRET
        publisher_token = create_token(api_key, api_secret, identity="demo-publisher", room="kitewire-demo")
        viewer_token = create_token(api_key, api_secret, identity="demo-viewer", room="kitewire-demo")
        publisher = rtc.Room()
        viewer = rtc.Room()
        subscribed: asyncio.Future[rtc.RemoteVideoTrack] = loop.create_future()

        @viewer.on("track_subscribed")
        def on_track_subscribed(
            track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
        ) -> None:
            if isinstance(track, rtc.RemoteVideoTrack) and not subscribed.done():
                subscribed.set_result(track)

        source = rtc.VideoSource(width, height)
        capture_task: asyncio.Task[None] | None = None
        stream: rtc.VideoStream | None = None
        try:
            await viewer.connect(url, viewer_token)
            await publisher.connect(url, publisher_token)
            track = rtc.LocalVideoTrack.create_video_track("pattern", source)
            options = rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA,
                video_codec=rtc.VideoCodec.H264 if codec == "h264" else rtc.VideoCodec.VP8,
            )
            publication = await publisher.local_participant.publish_track(track, options)

            async def capture() -> None:
                index = 0
                start = time.monotonic()
                while True:
                    frame = await loop.run_in_executor(None, make_pattern_frame, index, width, height)
                    source.capture_frame(frame, timestamp_us=time.time_ns() // 1000)
                    index += 1
                    delay = start + index / fps - time.monotonic()
                    await asyncio.sleep(max(0.0, delay))

            capture_task = loop.create_task(capture())
            try:
                remote_track = await asyncio.wait_for(subscribed, 10.0)
            except TimeoutError:
                raise DemoError("the viewer was not subscribed to the pattern within 10 s") from None
            stream = rtc.VideoStream(remote_track, capacity=2)

            def bytes_sent() -> int:
                return publication.bytes_sent

            return await _measure(stream, seconds, output, quiet, bytes_sent)
        except rtc.ConnectError as exc:
            raise DemoError(f"could not connect: {exc}") from None
        finally:
            if capture_task is not None:
                capture_task.cancel()
                await asyncio.gather(capture_task, return_exceptions=True)
            if stream is not None:
                await stream.aclose()
            await source.aclose()
            await publisher.disconnect()
            await viewer.disconnect()


async def _measure(
    stream: Any, seconds: float, output: str, quiet: bool, bytes_sent: Callable[[], int]
) -> dict[str, Any]:
    from kitewire import rtc

    received = 0
    latencies_ms: list[float] = []
    window_frames = 0
    window_start = time.monotonic()
    deadline = window_start + seconds
    last_frame: VideoFrame | None = None
    first_bytes = window_bytes = bytes_sent()
    measure_start = window_start
    while time.monotonic() < deadline:
        try:
            event: rtc.VideoFrameEvent = await asyncio.wait_for(
                stream.__anext__(), max(0.1, deadline - time.monotonic())
            )
        except (TimeoutError, StopAsyncIteration):
            break
        received += 1
        window_frames += 1
        last_frame = event.frame
        latencies_ms.append((time.time_ns() // 1000 - event.timestamp_us) / 1000.0)
        now = time.monotonic()
        if now - window_start >= 1.0 and not quiet:
            fps = window_frames / (now - window_start)
            recent = sorted(latencies_ms[-window_frames:])
            median = recent[len(recent) // 2] if recent else 0.0
            sent = bytes_sent()
            kbps = (sent - window_bytes) * 8 / (now - window_start) / 1000
            print(
                f"\rreceived {received:5d} frames  {fps:5.1f} fps  latency {median:6.1f} ms  {kbps:7.0f} kbps",
                end="",
                flush=True,
            )
            window_frames = 0
            window_start = now
            window_bytes = sent
    if not quiet:
        print()
    if last_frame is None:
        raise DemoError("no frame was received")
    _write_png(last_frame, output)
    ordered = sorted(latencies_ms)
    elapsed = max(1e-6, time.monotonic() - measure_start)
    summary = {
        "frames_received": received,
        "fps": received / elapsed,
        "latency_ms_median": ordered[len(ordered) // 2],
        "latency_ms_p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "bitrate_kbps": (bytes_sent() - first_bytes) * 8 / elapsed / 1000,
        "output": os.path.abspath(output),
    }
    if not quiet:
        print(
            f"{received} frames in {elapsed:.1f} s ({summary['fps']:.1f} fps), end-to-end latency median "
            f"{summary['latency_ms_median']:.1f} ms / p95 {summary['latency_ms_p95']:.1f} ms, "
            f"{summary['bitrate_kbps']:.0f} kbps"
        )
        print(f"wrote one received frame to {summary['output']}")
    return summary
