"""Audio latency benchmark: from ``capture_frame`` to the AudioStream yield, kitewire beside the
official SDK, through kitewire serve.

``kitewire bench audio [--seconds N]`` runs rows kitewire -> kitewire, official -> official (the
anchor), kitewire -> official and official -> kitewire. Each peer is a child process
(``python -m kitewire.bench.audio publish|subscribe --sdk kitewire|official``). The publisher
captures 10 ms frames in real time: 2 s of silence, then a 1 kHz beep of 40 ms every half second, and
reports ``time.monotonic_ns()`` just before capturing each beep's first frame; the subscriber
reports the same clock when a frame with the beep's first loud sample is yielded
(CLOCK_MONOTONIC is system-wide). Target: kitewire -> kitewire p50 no worse than the official pair's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kitewire.bench._children import Peer, PeerError, load_average, percentile
from kitewire.bench._peers import emit, sdk_module, stdin_closed

RATE = 48_000
FRAME = RATE // 100
BEEP_EVERY_FRAMES = 50
BEEP_FRAMES = 4
# silence captured before the first beep, while the subscriber's stream comes up
WARMUP_SECONDS = 2.0
ROWS = (("kitewire", "kitewire"), ("official", "official"), ("kitewire", "official"), ("official", "kitewire"))


async def _publish(args: argparse.Namespace) -> None:
    rtc = sdk_module(args.sdk)
    room = rtc.Room()
    await room.connect(args.url, args.token)
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("beeps", source)
    await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    beep = (np.sin(2 * np.pi * 1000 * np.arange(FRAME) / RATE) * 12000).astype(np.int16).tobytes()
    silence = bytes(FRAME * 2)
    emit("capturing")
    start = time.monotonic()
    warmup = int(WARMUP_SECONDS * 100)
    for index in range(int(args.seconds * 100) + warmup):
        phase = (index - warmup) % BEEP_EVERY_FRAMES if index >= warmup else BEEP_FRAMES
        if phase == 0:
            emit("beep", t=time.monotonic_ns())
        await source.capture_frame(rtc.AudioFrame(beep if phase < BEEP_FRAMES else silence, RATE, 1, FRAME))
        await asyncio.sleep(max(0.0, start + (index + 1) / 100 - time.monotonic()))
    await room.disconnect()


async def _subscribe(args: argparse.Namespace) -> None:
    rtc = sdk_module(args.sdk)
    room = rtc.Room()
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    async def read(track: Any) -> None:
        loud_before = False
        async for event in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
            samples = np.frombuffer(bytes(event.frame.data.cast("B")), dtype=np.int16)
            loud = bool(samples.size) and int(np.abs(samples.astype(np.int32)).max()) > 4000
            if loud and not loud_before:
                emit("heard", t=time.monotonic_ns())
            loud_before = loud

    def on_track(track: Any, *_: Any) -> None:
        if int(track.kind) == int(rtc.TrackKind.KIND_AUDIO):
            tasks.append(asyncio.create_task(read(track)))

    room.on("track_subscribed", on_track)
    await room.connect(args.url, args.token)
    emit("connected")
    await stdin_closed(loop)
    for task in tasks:
        task.cancel()
    await room.disconnect()


@dataclass
class AudioRow:
    """Latencies (ms) of one publisher -> subscriber pair."""

    publisher: str
    subscriber: str
    latencies_ms: list[float] = field(default_factory=list)
    beeps: int = 0
    error: str | None = None


def match(beeps: Sequence[int], heard: Sequence[int], window_ns: int = 400_000_000) -> list[float]:
    """Latency (ms) of each beep to the first onset heard after it within ``window_ns``."""
    out = []
    for beep in beeps:
        later = [t for t in heard if 0 <= t - beep < window_ns]
        if later:
            out.append((min(later) - beep) / 1e6)
    return out


async def run_row(url: str, publisher_sdk: str, subscriber_sdk: str, seconds: float, room: str) -> AudioRow:
    """Measure one row; failures land in ``row.error``."""
    from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

    row = AudioRow(publisher_sdk, subscriber_sdk)
    module = "kitewire.bench.audio"
    peers: list[Peer] = []
    try:

        def token(identity: str) -> str:
            return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)

        subscriber = await Peer.start(
            f"{subscriber_sdk}-audio-subscriber",
            ["subscribe", "--sdk", subscriber_sdk, "--url", url, "--token", token("listener")],
            module=module,
        )
        peers.append(subscriber)
        await subscriber.wait_event("connected", 60)
        publisher = await Peer.start(
            f"{publisher_sdk}-audio-publisher",
            ["publish", "--sdk", publisher_sdk, "--url", url, "--token", token("speaker"), "--seconds", str(seconds)],
            module=module,
        )
        peers.append(publisher)
        beeps: list[int] = []
        heard: list[int] = []

        async def collect(peer: Peer, name: str, into: list[int]) -> None:
            with contextlib.suppress(PeerError):
                while True:
                    event = await peer.next_event(seconds + 60)
                    if event["event"] == name:
                        into.append(int(event["t"]))

        readers = [
            asyncio.create_task(collect(publisher, "beep", beeps)),
            asyncio.create_task(collect(subscriber, "heard", heard)),
        ]
        await asyncio.wait_for(publisher.process.wait(), seconds + WARMUP_SECONDS + 60)
        await asyncio.sleep(1.0)
        await subscriber.stop()
        await asyncio.gather(*readers)
        row.beeps = len(beeps)
        row.latencies_ms = match(beeps, heard)
    except (PeerError, OSError, TimeoutError) as exc:
        row.error = str(exc) or type(exc).__name__
    finally:
        for peer in peers:
            await peer.stop()
    return row


def format_table(rows: Sequence[AudioRow]) -> str:
    """The markdown table, the official pair's p50 beside each row."""
    anchor = next((r for r in rows if r.publisher == r.subscriber == "official" and r.latencies_ms), None)
    lines = [
        "| publisher -> subscriber | beeps heard | p50 ms | p95 ms | vs official pair p50 |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        label = f"{row.publisher} -> {row.subscriber}"
        if row.error is not None or not row.latencies_ms:
            lines.append(f"| {label} | 0/{row.beeps} | - | - | {row.error or 'nothing heard'} |")
            continue
        p50, p95 = percentile(row.latencies_ms, 0.5), percentile(row.latencies_ms, 0.95)
        versus = (
            "anchor" if row is anchor else (f"{p50 / percentile(anchor.latencies_ms, 0.5):.2f}x" if anchor else "-")
        )
        lines.append(f"| {label} | {len(row.latencies_ms)}/{row.beeps} | {p50:.1f} | {p95:.1f} | {versus} |")
    return "\n".join(lines)


async def run_benchmark(seconds: float, rows: Sequence[tuple[str, str]]) -> list[AudioRow]:
    """Start kitewire serve in a child process and measure each row through it."""
    from kitewire.bench.server_process import EmbeddedServer

    results = []
    async with EmbeddedServer() as server:
        for index, (publisher, subscriber) in enumerate(rows):
            results.append(await run_row(server.url, publisher, subscriber, seconds, f"bench-audio-{index}"))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire bench audio``."""
    parser.add_argument("--audio-seconds", type=float, default=20.0, help="audio bench: seconds per row")


def run(args: argparse.Namespace) -> int:
    """``kitewire bench audio``: print the table."""
    seconds = float(getattr(args, "audio_seconds", 20.0))
    print(f"kitewire bench audio: {seconds:.0f} s per row, load average {load_average()}")
    results = asyncio.run(run_benchmark(seconds, ROWS))
    print(format_table(results))
    print(f"load average after: {load_average()}")
    return 0 if all(row.error is None for row in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kitewire.bench.audio publish|subscribe ...`` (a peer) or ``bench`` (the table)."""
    parser = argparse.ArgumentParser(prog="python -m kitewire.bench.audio")
    parser.add_argument("role", choices=("publish", "subscribe", "bench"))
    parser.add_argument("--sdk", choices=("kitewire", "official"), default="kitewire")
    parser.add_argument("--url", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.role == "bench":
        args.audio_seconds = args.seconds
        return run(args)
    try:
        asyncio.run(_publish(args) if args.role == "publish" else _subscribe(args))
    except Exception as exc:  # reported to the parent, which prints it in the table
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
