"""Memory benchmark: RSS of a subscriber that falls behind, 1280x720 at 30 fps.

Rows (each subscriber is its own process, fed by a kitewire publisher in another
process through one in-process kitewire server):

- kitewire ``VideoStream(capacity=1)`` that never reads: the target row, RSS
  growth under 20 MB (last sample minus the first sample after warm-up);
- kitewire ``VideoStream(capacity=0)`` reading one frame per 200 ms: the
  contrast, an unbounded queue that grows;
- official SDK ``VideoStream(capacity=1)`` that never reads: the anchor.

RSS is VmRSS from /proc/<pid>/status of the subscriber plus its children (kitewire's media
process), sampled every few seconds. At the end each
subscriber reads one more frame, and its age (now minus its capture time) shows
how stale a late reader's next frame is.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kitewire.bench._children import (
    Peer,
    PeerError,
    load_1min,
    load_average,
    peer_arguments,
)
from kitewire.bench.procfs import tree_rss_bytes

TARGET_GROWTH_MB = 20.0
SECTION = "memory"
COUNTER_MODULO = 4096
MB = 1024 * 1024
# a slow reader with an unbounded queue grows ~30 MB/s at 720p30; stop it before it
# takes memory the machine's other work needs
SAFETY_LIMIT_MB = 1536.0

_room_numbers = itertools.count(1)


@dataclass(frozen=True)
class MemoryRow:
    """One subscriber configuration."""

    sdk: str
    capacity: int
    read_interval: float  # seconds between reads; < 0 never reads

    @property
    def label(self) -> str:
        """A readable description of the subscriber."""
        reads = "never reads" if self.read_interval < 0 else f"reads 1 frame / {self.read_interval * 1000:.0f} ms"
        return f"{self.sdk} capacity={self.capacity}, {reads}"


ROWS: tuple[MemoryRow, ...] = (
    MemoryRow("kitewire", 1, -1.0),
    MemoryRow("kitewire", 0, 0.2),
    MemoryRow("official", 1, -1.0),
)


@dataclass
class MemorySettings:
    """Durations of the memory rows."""

    seconds: float = 60.0
    warmup: float = 10.0
    interval: float = 5.0
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    codec: str = "VP8"

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.interval <= 0 or not 0 <= self.warmup < self.seconds:
            raise ValueError(
                "expected seconds > 0, interval > 0 and 0 <= warmup < seconds, "
                f"got seconds={self.seconds}, interval={self.interval}, warmup={self.warmup}"
            )


@dataclass
class MemoryResult:
    """RSS samples and figures of one row."""

    row: MemoryRow
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since subscribed, RSS bytes)
    warm_sample: tuple[float, int] | None = None
    frames_read: int = 0
    final_age_s: float | None = None
    stopped_early_s: float | None = None
    load: float | None = None
    """The machine's 1-minute load average at the last sample."""
    error: str | None = None

    @property
    def growth_mb(self) -> float | None:
        """Last sample minus the first one after warm-up, in MB."""
        if self.warm_sample is None or not self.samples:
            return None
        return (self.samples[-1][1] - self.warm_sample[1]) / MB

    @property
    def target_met(self) -> str:
        """Verdict for the table: the target applies to kitewire with capacity=1."""
        if self.error is not None or self.growth_mb is None:
            return "-"
        if self.row.sdk != "kitewire":
            return "anchor"
        if self.row.capacity != 1:
            return "contrast"
        return "yes" if self.growth_mb < TARGET_GROWTH_MB else f"NO: grew {self.growth_mb:.1f} MB"


def parse_rows(text: str | None) -> list[MemoryRow]:
    """``k1,k0,o1`` (SDK letter and capacity; capacity 0 reads slowly) -> rows."""
    if not text:
        return list(ROWS)
    rows = []
    for item in text.split(","):
        code = item.strip().lower()
        if code not in ("k1", "k0", "o1", "o0"):
            raise ValueError(f"expected memory rows among k1,k0,o1,o0, got {item!r}")
        sdk = "kitewire" if code[0] == "k" else "official"
        capacity = int(code[1])
        rows.append(MemoryRow(sdk, capacity, -1.0 if capacity == 1 else 0.2))
    return rows


async def run_row(url: str, row: MemoryRow, settings: MemorySettings) -> MemoryResult:
    """Measure one subscriber's RSS; failures land in ``result.error``."""
    result = MemoryResult(row)
    room = f"bench-memory-{next(_room_numbers)}"
    subscriber: Peer | None = None
    publisher: Peer | None = None
    try:
        subscriber = await Peer.start(
            f"{row.sdk}-subscriber",
            ["subscribe", "--sdk", row.sdk, "--capacity", str(row.capacity)]
            + ["--read-interval", str(row.read_interval)]
            + peer_arguments(url, room, "bench-subscriber", settings),
        )
        await subscriber.wait_event("connected", 60)
        publisher = await Peer.start(
            "kitewire-publisher",
            ["publish", "--sdk", "kitewire", "--seconds", str(settings.seconds + 90)]
            + peer_arguments(url, room, "bench-publisher", settings),
        )
        await publisher.wait_event("capturing", 60)
        await subscriber.wait_event("subscribed", 30)
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            result.samples.append((elapsed, tree_rss_bytes(subscriber.pid)))
            if result.warm_sample is None and elapsed >= settings.warmup:
                result.warm_sample = result.samples[-1]
            if elapsed >= settings.seconds - 1e-3:
                break
            if (result.samples[-1][1] - result.samples[0][1]) / MB > SAFETY_LIMIT_MB:
                result.stopped_early_s = elapsed
                break
            next_sample = start + min(settings.seconds, (len(result.samples)) * settings.interval)
            await asyncio.sleep(max(0.0, next_sample - time.monotonic()))
        result.load = load_1min()
        # stop the subscriber first: its last read happens while frames still flow
        subscriber.close_stdin()
        report = await subscriber.wait_event("frames", 30)
        publisher.close_stdin()
        captures = await publisher.wait_event("captures", 30)
        result.frames_read = len(report["frames"])
        final = report.get("final_read")
        if final:
            read_ns, counter = int(final[0]), int(final[1])
            times = [t for index, t in captures["captures"] if index % COUNTER_MODULO == counter and t <= read_ns]
            if times:
                result.final_age_s = (read_ns - max(times)) / 1e9
    except (PeerError, OSError, ValueError) as error:
        result.error = str(error)
    finally:
        for maybe_peer in (subscriber, publisher):
            if maybe_peer is not None:
                await maybe_peer.stop()
    return result


async def run_memory(
    settings: MemorySettings, rows: Sequence[MemoryRow], *, progress: bool = True
) -> list[MemoryResult]:
    """All rows, one after the other, through one in-process server."""
    from kitewire.server import Server, ServerConfig

    results: list[MemoryResult] = []
    async with Server(ServerConfig.dev(port=0, log_level="warning")) as server:
        for row in rows:
            result = await run_row(server.url, row, settings)
            results.append(result)
            if progress:
                print(format_row(result), flush=True)
    return results


TABLE_HEADER = (
    "| subscriber | RSS after warm-up MB | RSS at end MB | growth MB | frames read | age of next frame at end s "
    "| load avg | target met |\n|---|---:|---:|---:|---:|---:|---:|---|"
)


def format_row(result: MemoryResult) -> str:
    """One markdown table row."""
    if result.error is not None:
        reason = result.error.replace("|", "/")[:300]
        return f"| {result.row.label} | - | - | - | - | - | - | failed: {reason} |"
    verdict = result.target_met
    if result.stopped_early_s is not None:
        verdict += f" (stopped at {result.stopped_early_s:.0f} s: over {SAFETY_LIMIT_MB:.0f} MB growth)"
    warm = "-" if result.warm_sample is None else f"{result.warm_sample[1] / MB:.1f}"
    end = "-" if not result.samples else f"{result.samples[-1][1] / MB:.1f}"
    growth = "-" if result.growth_mb is None else f"{result.growth_mb:+.1f}"
    age = "-" if result.final_age_s is None else f"{result.final_age_s:.2f}"
    load = "-" if result.load is None else f"{result.load:.1f}"
    return f"| {result.row.label} | {warm} | {end} | {growth} | {result.frames_read} | {age} | {load} | {verdict} |"


def format_series(results: Sequence[MemoryResult]) -> str:
    """RSS over time of each row, one line each."""
    lines = []
    for result in results:
        if result.samples:
            series = ", ".join(f"{seconds:.0f}s {rss / MB:.0f}" for seconds, rss in result.samples)
            lines.append(f"- {result.row.label}: {series} (MB)")
    return "\n".join(lines)


def describe_run(settings: MemorySettings, command: str) -> str:
    """Heading lines: command, conditions, target."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## Memory of a subscriber that falls behind, {settings.width}x{settings.height} at {settings.fps:g} fps "
        f"(`kitewire bench memory`)\n\n"
        f"Command: `{command}`\n\n"
        f"Run {now}: {settings.codec}, {settings.seconds:g} s per row, "
        f"RSS (VmRSS of the subscriber process plus its media process) every "
        f"{settings.interval:g} s, growth = last sample minus the first sample after {settings.warmup:g} s; a "
        f"kitewire publisher in another process; python {platform.python_version()}, load average before the run "
        f"{load_average()}.\n\n"
        f"Target: kitewire with capacity=1 grows less than {TARGET_GROWTH_MB:.0f} MB. The capacity=0 slow reader is "
        "the contrast (every frame is kept) and the official SDK's capacity=1 stream the anchor. The last column is "
        "how old the frame a reader gets after the run is."
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the memory benchmark (besides ``--quick``)."""
    parser.add_argument(
        "--memory-seconds",
        type=float,
        default=None,
        help="seconds per memory row (default 60, quick 10)",
    )
    parser.add_argument(
        "--memory-rows",
        default=None,
        help="memory rows among k1,k0,o1,o0 (SDK letter, capacity; default k1,k0,o1)",
    )


def settings_from(args: argparse.Namespace) -> MemorySettings:
    """Settings from parsed command-line options."""
    quick = bool(getattr(args, "quick", False))
    seconds = args.memory_seconds if args.memory_seconds is not None else (10.0 if quick else 60.0)
    interval = 1.0 if seconds <= 15 else 5.0
    warmup = min(10.0, max(interval, seconds * 0.2))
    return MemorySettings(seconds=seconds, warmup=warmup, interval=interval)


def render(settings: MemorySettings, results: Sequence[MemoryResult], command: str) -> str:
    """The markdown section for BENCHMARKS.md."""
    parts = [
        describe_run(settings, command),
        "",
        TABLE_HEADER,
        *(format_row(result) for result in results),
    ]
    series = format_series(results)
    if series:
        parts += ["", "RSS over time (seconds since subscribed, MB):", "", series]
    return "\n".join(parts)


def run_benchmark(args: argparse.Namespace, command: str) -> tuple[int, str]:
    """Run the memory rows from parsed options; (exit status, markdown section)."""
    settings = settings_from(args)
    rows = parse_rows(args.memory_rows)
    print(describe_run(settings, command), flush=True)
    print(TABLE_HEADER, flush=True)
    results = asyncio.run(run_memory(settings, rows))
    print(format_series(results))
    failed = any(result.error is not None for result in results)
    return (1 if failed else 0), render(settings, results, command)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kitewire.bench.memory``."""
    from kitewire.bench import _markdown

    return _markdown.script_main(
        argv,
        script="memory",
        description="RSS of a kitewire subscriber that falls behind, beside the official SDK",
        quick_help="10 s per row",
        section=SECTION,
        add_arguments=add_arguments,
        run_benchmark=run_benchmark,
    )


if __name__ == "__main__":
    sys.exit(main())
