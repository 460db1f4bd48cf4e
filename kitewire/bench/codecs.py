"""Encode/decode cost of kitewire.media's codecs, one thread vs two in parallel.

Run: python -m kitewire.bench.codecs [--frames N]

For each codec and size it prints milliseconds per frame for
  * kitewire encode (PyAV encoder + RTP packetization) and decode,
  * the anchor: bare PyAV with the same settings (no packetization),
  * two threads, each with its own encoder/decoder, running at once: wall
    time per frame per thread and the speedup over running the two jobs back
    to back. A speedup near 2.0 on 2 cores shows PyAV drops the GIL while the
    codec works; a GIL-bound job would stay near 1.0.
The 30 fps real-time budget (33.3 ms per frame) is printed as a second anchor,
and a pure-Python job (holds the GIL) run the same way shows what no GIL
release looks like. Other processes on the machine skew the parallel column;
best-of-N runs damp that.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from functools import partial

import av

from kitewire.frames.pattern import textured_frames
from kitewire.media import VideoDecoder, VideoEncoder, create_depacketizer

SIZES = ((640, 480), (1280, 720))
CODECS = ("VP8", "H264")


def kitewire_encode(codec: str, frames: list[av.VideoFrame]) -> Callable[[], None]:
    def job() -> None:
        encoder = VideoEncoder(codec, frames[0].width, frames[0].height, 1_500_000, 30.0)
        for frame in frames:
            encoder.encode(frame)

    return job


def pyav_encode(codec: str, frames: list[av.VideoFrame]) -> Callable[[], None]:
    """Anchor: the bare PyAV encoder with the options VideoEncoder uses."""

    def job() -> None:
        encoder = VideoEncoder(codec, frames[0].width, frames[0].height, 1_500_000, 30.0)
        context = encoder._open(encoder._current_settings())  # same settings, no packetization
        for index, frame in enumerate(frames):
            frame.pts = index * 3000  # 90 kHz ticks at 30 fps, as VideoEncoder stamps them
            context.encode(frame)

    return job


def encoded_stream(codec: str, frames: list[av.VideoFrame]) -> list[bytes]:
    encoder = VideoEncoder(codec, frames[0].width, frames[0].height, 1_500_000, 30.0)
    depacketizer = create_depacketizer(codec)
    return [depacketizer.depacketize(encoder.encode(frame)) for frame in frames]


def kitewire_decode(codec: str, stream: list[bytes]) -> Callable[[], None]:
    def job() -> None:
        decoder = VideoDecoder(codec)
        for data in stream:
            decoder.decode(data)

    return job


def pyav_decode(codec: str, stream: list[bytes]) -> Callable[[], None]:
    def job() -> None:
        context = av.CodecContext.create("vp8" if codec == "VP8" else "h264", "r")
        context.thread_count = 1
        for data in stream:
            context.decode(av.Packet(data))

    return job


def pure_python_job(count: int) -> Callable[[], None]:
    """GIL-bound anchor: roughly a millisecond of interpreter work per "frame"."""

    def job() -> None:
        for _ in range(count):
            total = 0
            for value in range(20_000):
                total += value * value

    return job


def keyframe_check_cost() -> None:
    """is_keyframe runs on every forwarded packet in the SFU: show its cost
    next to the cheapest possible per-packet Python call."""
    from kitewire.media import H264Packetizer, Vp8Packetizer, is_keyframe

    vp8 = Vp8Packetizer().packetize(b"\x50\x42\x00\x9d\x01\x2a" + bytes(1500))[0]
    h264 = H264Packetizer().packetize(b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x65" + b"\x88" * 3000)[1]
    calls = 200_000
    for name, payload, mime in (("VP8", vp8, "video/VP8"), ("H264", h264, "video/H264")):
        start = time.perf_counter()
        for _ in range(calls):
            is_keyframe(mime, payload)
        ours = (time.perf_counter() - start) / calls * 1e9
        start = time.perf_counter()
        for _ in range(calls):
            len(payload)
        anchor = (time.perf_counter() - start) / calls * 1e9
        print(f"is_keyframe {name:4}: {ours:6.0f} ns/packet   (anchor: len(payload) {anchor:4.0f} ns)")


def assembler_cost() -> None:
    """FrameAssembler.push runs on the event loop for every received packet:
    show its cost per packet (10 packets per frame, frames completing)."""
    from kitewire.media import FrameAssembler, H264Packetizer, Vp8Packetizer

    for codec in ("VP8", "H264"):
        packetizer = Vp8Packetizer() if codec == "VP8" else H264Packetizer()
        streams = []
        for index in range(300):
            key = index % 100 == 0
            if codec == "VP8":
                data = (b"\x50\x42\x00\x9d\x01\x2a" if key else b"\x31\x05\x00") + bytes(12_000)
            else:
                head = b"\x00\x00\x00\x01\x67\x42\xe0\x1f\x00\x00\x00\x01\x68\xce\x3c\x80" if key else b""
                data = head + b"\x00\x00\x00\x01" + (b"\x65" if key else b"\x41") + b"\x88" * 12_000
            streams.append(packetizer.packetize(data))
        assembler = FrameAssembler(codec)
        count = 0
        start = time.perf_counter()
        for index, payloads in enumerate(streams):
            now = index / 30
            for position, payload in enumerate(payloads):
                assembler.push(count & 0xFFFF, index * 3000, position == len(payloads) - 1, payload, now)
                count += 1
            assembler.nack_list(now)
            assembler.poll(now)
        cost = (time.perf_counter() - start) / count * 1e6
        print(f"FrameAssembler {codec:4}: {cost:6.1f} us/packet  (anchor: 720p30 at 3 Mbps is ~300 packets/s)")


def timed(job: Callable[[], None]) -> float:
    start = time.perf_counter()
    job()
    return time.perf_counter() - start


def timed_parallel(job: Callable[[], None]) -> float:
    threads = [threading.Thread(target=job) for _ in range(2)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def best_of(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=60, help="frames per run (default 60)")
    parser.add_argument("--runs", type=int, default=5, help="best of N runs (default 5)")
    args = parser.parse_args()
    count = args.frames
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"PyAV {av.__version__}, {os.cpu_count()} CPUs, {count} frames per run, best of {args.runs}")
    print(f"load average before the run: {load} (other busy processes push the speedups towards 1)")
    print("anchor: 30 fps budget = 33.3 ms/frame; ideal 2-thread speedup on 2 cores = 2.00")
    header = f"{'codec':5} {'op':6} {'size':>9} | {'kitewire':>9} {'bare PyAV':>9} | {'2 threads':>9} {'speedup':>7}"
    print(header)
    print("-" * len(header))
    for width, height in SIZES:
        frames = textured_frames(width, height, count)
        for codec in CODECS:
            stream = encoded_stream(codec, frames)
            rows = (
                ("encode", kitewire_encode(codec, frames), pyav_encode(codec, frames)),
                ("decode", kitewire_decode(codec, stream), pyav_decode(codec, stream)),
            )
            for operation, ours, anchor in rows:
                single = best_of(args.runs, partial(timed, ours))
                bare = best_of(args.runs, partial(timed, anchor))
                parallel = best_of(args.runs, partial(timed_parallel, ours))
                per_frame = 1000 * single / count
                print(
                    f"{codec:5} {operation:6} {width:>4}x{height:<4} | "
                    f"{per_frame:7.2f}ms {1000 * bare / count:7.2f}ms | "
                    f"{1000 * parallel / count:7.2f}ms {2 * single / parallel:7.2f}"
                )
    gil_bound = pure_python_job(count)
    single = best_of(args.runs, partial(timed, gil_bound))
    parallel = best_of(args.runs, partial(timed_parallel, gil_bound))
    print(
        f"{'py':5} {'loop':6} {'(GIL)':>9} | {1000 * single / count:7.2f}ms {'':>9} | "
        f"{1000 * parallel / count:7.2f}ms {2 * single / parallel:7.2f}"
    )
    keyframe_check_cost()
    assembler_cost()
    print("(2 threads: wall time per frame with two jobs at once; speedup = 2 x single / parallel)")


if __name__ == "__main__":
    main()
