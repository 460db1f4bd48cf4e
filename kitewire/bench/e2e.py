"""End-to-end benchmark: 1280x720 at 30 fps through the embedded server, kitewire beside the official SDK.

Each row runs one publisher and one subscriber, each in its own process, through
one in-process kitewire server:

- **latency**: ``time.monotonic_ns()`` just before ``capture_frame`` in the
  publisher to the moment the subscriber's ``VideoStream`` yields the frame;
  frames are matched by the counter drawn in their pixels, and CLOCK_MONOTONIC
  is shared by all processes of the machine, so one clock times both ends;
- **fps**: frames yielded per second of the measuring window;
- **freezes**: gaps of more than 200 ms between yields (window edges included);
- **CPU**: user + system seconds per second of each process, from
  /proc/<pid>/stat, sampled at the edges of the window (the server's is this
  process's own, which does nothing else meanwhile);
- **loop lag**: how late the subscriber's event loop wakes a task sleeping
  10 ms, p99 over the window.

Rows: kitewire -> kitewire, official -> official (the anchor), and both
crossovers. Targets: p50 <= 15 ms and p95 <= 30 ms on loopback and no worse than
the official pair, >= 29.5 fps delivered, subscriber CPU no more than the
official subscriber's, and the kitewire subscriber's loop lag p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kitewire.bench._children import (
    Peer,
    PeerError,
    Profiler,
    hot_spots,
    load_1min,
    load_average,
    own_cpu_seconds,
    peer_arguments,
    percentile,
)
from kitewire.bench.procfs import tree_cpu_seconds

ROWS: tuple[tuple[str, str], ...] = (
    ("kitewire", "kitewire"),
    ("official", "official"),
    ("kitewire", "official"),
    ("official", "kitewire"),
)
ROW_CODES = {"k": "kitewire", "o": "official"}
TARGET_P50_MS = 15.0
TARGET_P95_MS = 30.0
TARGET_FPS = 29.5
TARGET_LOOP_LAG_P99_MS = 10.0
FREEZE_GAP_MS = 200.0
COUNTER_MODULO = 4096  # kitewire.demo's pattern carries 12 bits of counter
SECTION = "e2e"

_room_numbers = itertools.count(1)


@dataclass
class E2ESettings:
    """What one run measures and for how long."""

    seconds: float = 30.0
    warmup: float = 3.0
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    codec: str = "VP8"
    profile_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.warmup < 0:
            raise ValueError(f"expected seconds > 0 and warmup >= 0, got {self.seconds} and {self.warmup}")
        if self.codec not in ("VP8", "H264"):
            raise ValueError(f"expected codec VP8 or H264, got {self.codec!r}")


@dataclass
class E2EResult:
    """Figures of one publisher -> subscriber row."""

    publisher: str
    subscriber: str
    window_s: float = 0.0
    captured: int = 0
    delivered: int = 0
    lost: int = 0
    """Frames captured in the window that were never yielded (dropped anywhere on the way)."""
    latencies_ms: list[float] = field(default_factory=list)
    freezes: int = 0
    longest_gap_ms: float = 0.0
    publisher_cpu: float = 0.0
    subscriber_cpu: float = 0.0
    server_cpu: float = 0.0
    loop_lag_p99_ms: float | None = None
    late_wakes: int = 0
    """Loop-lag probes woken 10 ms or more late."""
    late_wakes_loop_busy: int = 0
    """Of those, how many had the loop's thread running for most of the delay (long callbacks)."""
    late_wakes_cpu_wait: int = 0
    """Of those, how many had the loop's thread runnable but waiting for a CPU most of the delay."""

    @property
    def late_wakes_other(self) -> int:
        """Late wakes with the thread neither running nor queued: waiting for the GIL (or blocked)."""
        return self.late_wakes - self.late_wakes_loop_busy - self.late_wakes_cpu_wait

    sizes: list[str] = field(default_factory=list)
    load: float | None = None
    """The machine's 1-minute load average at the end of the window."""
    profiled: bool = False
    hot_spots: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    error: str | None = None

    @property
    def label(self) -> str:
        """``publisher -> subscriber``."""
        return f"{self.publisher} -> {self.subscriber}"

    def latency(self, fraction: float) -> float | None:
        """Latency percentile in ms, or None when no frame was matched."""
        return percentile(self.latencies_ms, fraction) if self.latencies_ms else None

    @property
    def fps(self) -> float:
        """Frames yielded per second of the window."""
        return self.delivered / self.window_s if self.window_s > 0 else 0.0

    @property
    def captured_fps(self) -> float:
        """Frames captured per second of the window (what the publisher managed)."""
        return self.captured / self.window_s if self.window_s > 0 else 0.0


def parse_rows(text: str | None) -> list[tuple[str, str]]:
    """``kk,oo,ko,ok`` (k = kitewire, o = official; publisher first) -> row pairs."""
    if not text:
        return list(ROWS)
    rows = []
    for item in text.split(","):
        code = item.strip().lower()
        if len(code) != 2 or any(letter not in ROW_CODES for letter in code):
            raise ValueError(f"expected rows like kk,oo,ko,ok (k = kitewire, o = official), got {item!r}")
        rows.append((ROW_CODES[code[0]], ROW_CODES[code[1]]))
    return rows


def analyse(
    result: E2EResult,
    window: tuple[int, int],
    captures: Sequence[Sequence[int]],
    frames: Sequence[Sequence[int]],
    lags: Sequence[Sequence[float]],
) -> None:
    """Fill ``result``'s figures from the peers' reports over ``window`` (monotonic ns)."""
    start_ns, end_ns = window
    result.window_s = (end_ns - start_ns) / 1e9
    capture_times: dict[int, list[int]] = {}
    for index, time_ns in captures:
        capture_times.setdefault(index % COUNTER_MODULO, []).append(time_ns)
        if start_ns <= time_ns <= end_ns:
            result.captured += 1
    yields_in_window: list[int] = []
    sizes: set[str] = set()
    matched_in_window: set[int] = set()
    for yield_ns, counter, width in frames:
        if start_ns <= yield_ns <= end_ns:
            yields_in_window.append(yield_ns)
            sizes.add(str(width))
        if counter < 0:
            continue
        earlier = [t for t in capture_times.get(counter, ()) if t <= yield_ns]
        if not earlier:
            continue
        capture_ns = max(earlier)
        if start_ns <= capture_ns <= end_ns:
            result.latencies_ms.append((yield_ns - capture_ns) / 1e6)
            matched_in_window.add(capture_ns)
    result.delivered = len(yields_in_window)
    result.lost = result.captured - len(matched_in_window)
    edges = [start_ns, *sorted(yields_in_window), end_ns]
    gaps_ms = [(later - earlier) / 1e6 for earlier, later in itertools.pairwise(edges)]
    result.longest_gap_ms = max(gaps_ms)
    result.freezes = sum(1 for gap in gaps_ms if gap > FREEZE_GAP_MS)
    result.sizes = sorted(sizes, key=int)
    window_lags = [entry for entry in lags if start_ns <= entry[0] <= end_ns]
    result.loop_lag_p99_ms = percentile([entry[1] for entry in window_lags], 0.99) if window_lags else None
    result.late_wakes = result.late_wakes_loop_busy = result.late_wakes_cpu_wait = 0
    for entry in window_lags:
        lateness, ran = entry[1], entry[2]
        queued = entry[3] if len(entry) > 3 else 0.0
        if lateness < TARGET_LOOP_LAG_P99_MS:
            continue
        result.late_wakes += 1
        if ran >= lateness / 2:
            result.late_wakes_loop_busy += 1
        elif queued >= lateness / 2:
            result.late_wakes_cpu_wait += 1


async def run_row(
    url: str,
    publisher_sdk: str,
    subscriber_sdk: str,
    settings: E2ESettings,
    *,
    on_first_frame: Callable[[], None] | None = None,
    publisher_options: Sequence[str] = (),
    subscriber_options: Sequence[str] = (),
) -> E2EResult:
    """Measure one row through the server at ``url``; failures land in ``result.error``.

    ``on_first_frame`` runs once the subscriber has its first frame, before the warm-up ends.
    ``publisher_options`` / ``subscriber_options`` are extra peer options (they win over the
    defaults), e.g. ``--busy-draw`` or ``--capacity 1 --busy-ms 25`` (``kitewire bench busy-app``).
    """
    result = E2EResult(publisher_sdk, subscriber_sdk)
    room = f"bench-e2e-{next(_room_numbers)}"
    subscriber: Peer | None = None
    publisher: Peer | None = None
    try:
        subscriber = await Peer.start(
            f"{subscriber_sdk}-subscriber",
            ["subscribe", "--sdk", subscriber_sdk, "--capacity", "0", "--read-interval", "0"]
            + peer_arguments(url, room, "bench-subscriber", settings)
            + list(subscriber_options),
        )
        await subscriber.wait_event("connected", 60)
        longest = settings.warmup + settings.seconds + 60
        publisher = await Peer.start(
            f"{publisher_sdk}-publisher",
            ["publish", "--sdk", publisher_sdk, "--seconds", str(longest)]
            + peer_arguments(url, room, "bench-publisher", settings)
            + list(publisher_options),
        )
        capturing = await publisher.wait_event("capturing", 60)
        await subscriber.wait_event("first_frame", 30)
        if on_first_frame is not None:
            on_first_frame()
        start_ns = max(int(capturing["start_ns"]) + int(settings.warmup * 1e9), time.monotonic_ns())
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
        profilers: dict[str, Profiler | None] = {}
        if settings.profile_dir is not None:
            stem = f"{publisher_sdk}-to-{subscriber_sdk}"
            for role, peer in (("publisher", publisher), ("subscriber", subscriber)):
                path = settings.profile_dir / f"e2e-{stem}-{role}.txt"
                profilers[role] = await Profiler.start(peer.pid, settings.seconds, path)
            result.profiled = any(profiler is not None for profiler in profilers.values())
        cpu_before = (
            tree_cpu_seconds(publisher.pid),
            tree_cpu_seconds(subscriber.pid),
            own_cpu_seconds(),
        )
        start_ns = time.monotonic_ns()
        await asyncio.sleep(settings.seconds)
        cpu_after = (
            tree_cpu_seconds(publisher.pid),
            tree_cpu_seconds(subscriber.pid),
            own_cpu_seconds(),
        )
        end_ns = time.monotonic_ns()
        result.load = load_1min()
        elapsed = (end_ns - start_ns) / 1e9
        result.publisher_cpu = (cpu_after[0] - cpu_before[0]) / elapsed
        result.subscriber_cpu = (cpu_after[1] - cpu_before[1]) / elapsed
        result.server_cpu = (cpu_after[2] - cpu_before[2]) / elapsed
        for role, profiler in profilers.items():
            profile = await profiler.finish() if profiler is not None else None
            if profile is not None:
                result.hot_spots[role] = hot_spots(profile)
        # frames captured near the end of the window still travel: let them arrive
        await asyncio.sleep(0.5)
        subscriber.close_stdin()
        report = await subscriber.wait_event("frames", 30)
        publisher.close_stdin()
        captures = await publisher.wait_event("captures", 30)
        analyse(
            result,
            (start_ns, end_ns),
            captures["captures"],
            report["frames"],
            report["lags"],
        )
    except (PeerError, OSError, ValueError) as error:
        result.error = str(error)
    finally:
        for maybe_peer in (publisher, subscriber):
            if maybe_peer is not None:
                await maybe_peer.stop()
    return result


async def run_e2e(settings: E2ESettings, rows: Sequence[tuple[str, str]], *, progress: bool = True) -> list[E2EResult]:
    """All rows, one after the other, through one in-process server."""
    from kitewire.server import Server, ServerConfig

    results: list[E2EResult] = []
    async with Server(ServerConfig.dev(port=0, log_level="warning")) as server:
        for publisher_sdk, subscriber_sdk in rows:
            result = await run_row(server.url, publisher_sdk, subscriber_sdk, settings)
            results.append(result)
            if progress:
                print(format_row(result, find_anchor(results)), flush=True)
    return results


def find_anchor(results: Sequence[E2EResult]) -> E2EResult | None:
    """The official -> official row, when it ran and produced figures."""
    for result in results:
        if result.publisher == result.subscriber == "official" and result.error is None and result.latencies_ms:
            return result
    return None


def misses(result: E2EResult, anchor: E2EResult | None) -> list[str]:
    """The targets a row misses (empty when all are met)."""
    missed: list[str] = []
    p50, p95 = result.latency(0.5), result.latency(0.95)
    if p50 is None or p95 is None:
        return ["no frames"]
    if p50 > TARGET_P50_MS:
        missed.append(f"p50 > {TARGET_P50_MS:.0f} ms")
    if p95 > TARGET_P95_MS:
        missed.append(f"p95 > {TARGET_P95_MS:.0f} ms")
    if result.fps < TARGET_FPS:
        missed.append(f"fps < {TARGET_FPS}")
    if anchor is not None and result is not anchor:
        anchor_p50, anchor_p95 = anchor.latency(0.5), anchor.latency(0.95)
        both_kitewire = result.publisher == result.subscriber == "kitewire"
        if (
            both_kitewire
            and anchor_p50 is not None
            and anchor_p95 is not None
            and (p50 > anchor_p50 or p95 > anchor_p95)
        ):
            missed.append("slower than official pair")
        if result.subscriber == "kitewire" and result.subscriber_cpu > anchor.subscriber_cpu:
            missed.append("sub CPU > official sub")
    lag = result.loop_lag_p99_ms
    if result.subscriber == "kitewire" and lag is not None and lag >= TARGET_LOOP_LAG_P99_MS:
        missed.append(f"loop lag p99 >= {TARGET_LOOP_LAG_P99_MS:.0f} ms")
    return missed


TABLE_HEADER = (
    "| publisher -> subscriber | p50 ms | p95 ms | p99 ms | fps delivered (captured) | frames lost | freezes > 200 ms "
    "| longest gap ms | publisher CPU s/s | subscriber CPU s/s | server CPU s/s | subscriber loop lag p99 ms "
    "| received width | load avg | target met |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_row(result: E2EResult, anchor: E2EResult | None) -> str:
    """One markdown table row."""
    if result.error is not None:
        reason = result.error.replace("|", "/")[:300]
        return f"| {result.label} | - | - | - | - | - | - | - | - | - | - | - | - | - | failed: {reason} |"
    if result.publisher == result.subscriber == "official":
        verdict = "anchor"
    else:
        missed = misses(result, anchor)
        verdict = "yes" if not missed else "NO: " + ", ".join(missed)
    profiled = " (profiled)" if result.profiled else ""
    return (
        f"| {result.label} | {_ms(result.latency(0.5))} | {_ms(result.latency(0.95))} "
        f"| {_ms(result.latency(0.99))} "
        f"| {result.fps:.1f} ({result.captured_fps:.1f}) | {result.lost} | {result.freezes} "
        f"| {result.longest_gap_ms:.0f} "
        f"| {result.publisher_cpu:.2f}{profiled} | {result.subscriber_cpu:.2f}{profiled} | {result.server_cpu:.2f} "
        f"| {_ms(result.loop_lag_p99_ms)} | {'/'.join(result.sizes) or '-'} | {_ms(result.load)} | {verdict} |"
    )


def format_table(results: Sequence[E2EResult]) -> str:
    """The whole markdown table."""
    anchor = find_anchor(results)
    return "\n".join([TABLE_HEADER, *(format_row(result, anchor) for result in results)])


def format_official_floor(results: Sequence[E2EResult]) -> str:
    """A note when the official subscriber alone is above the latency targets."""
    anchor = find_anchor(results)
    if anchor is None:
        return ""
    p50, p95 = anchor.latency(0.5), anchor.latency(0.95)
    if p50 is None or p95 is None or (p50 <= TARGET_P50_MS and p95 <= TARGET_P95_MS):
        return ""
    return (
        f"The official pair itself takes {p50:.1f} ms at p50 and {p95:.1f} ms at p95 (libwebrtc's receive side "
        "holds frames in its jitter buffer before they are yielded), so rows into an official subscriber cannot "
        "meet the absolute latency targets whatever the publisher; compare them with the official pair."
    )


def format_late_wakes(results: Sequence[E2EResult]) -> str:
    """Why subscriber event loops woke late, per row, as a markdown list."""
    lines = []
    for result in results:
        if result.error is None and result.late_wakes:
            lines.append(
                f"- {result.label}: {result.late_wakes} loop-lag probes woke >= {TARGET_LOOP_LAG_P99_MS:.0f} ms late; "
                f"for most of the delay the loop's thread was running callbacks in {result.late_wakes_loop_busy}, "
                f"waiting for a CPU in {result.late_wakes_cpu_wait}, and neither (waiting for the GIL held by "
                f"another thread) in {result.late_wakes_other}"
            )
    return "\n".join(lines)


def format_hot_spots(results: Sequence[E2EResult]) -> str:
    """py-spy's busiest functions per profiled process, as a markdown list."""
    lines: list[str] = []
    for result in results:
        for role, spots in result.hot_spots.items():
            if not spots:
                continue
            lines.append(f"- {result.label}, {role} (py-spy, % of busy samples):")
            lines.extend(f"  - {share:.1f}% `{frame}`" for frame, share in spots)
    return "\n".join(lines)


def describe_run(settings: E2ESettings, command: str) -> str:
    """Heading lines: command, conditions, targets."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## End to end, {settings.width}x{settings.height} at {settings.fps:g} fps (`kitewire bench e2e`)\n\n"
        f"Command: `{command}`\n\n"
        f"Run {now}: {settings.codec}, {settings.seconds:g} s measured per row after {settings.warmup:g} s of warm-up, "
        f"publisher and subscriber each in its own process, one in-process kitewire server; python "
        f"{platform.python_version()}, load average before the run {load_average()} "
        "(the load avg column: 1-minute load at the end of each row, 2 cores; other work shared the machine).\n\n"
        "Latency: `capture_frame` to the `VideoStream` yield, matched by the counter drawn in the pixels, one "
        "clock (CLOCK_MONOTONIC) for both processes. CPU: user + system seconds per second from /proc. The "
        "official -> official row is the anchor. Targets: p50 <= 15 ms, p95 <= 30 ms and no worse than the "
        "official pair, >= 29.5 fps delivered, subscriber CPU no more than the official subscriber's, kitewire "
        "subscriber loop lag p99 < 10 ms."
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the end-to-end benchmark (besides ``--quick``)."""
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="measured seconds per row (default 30, quick 5)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before measuring (default 3, quick 2)",
    )
    parser.add_argument(
        "--codec",
        choices=("VP8", "H264"),
        default="VP8",
        help="video codec (default VP8)",
    )
    parser.add_argument(
        "--rows",
        default=None,
        help="e2e rows, e.g. kk,oo,ko,ok (k = kitewire, o = official)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="directory for py-spy profiles of the peers",
    )


def settings_from(args: argparse.Namespace) -> E2ESettings:
    """Settings from parsed command-line options."""
    quick = bool(getattr(args, "quick", False))
    seconds = args.seconds if args.seconds is not None else (5.0 if quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (2.0 if quick else 3.0)
    return E2ESettings(seconds=seconds, warmup=warmup, codec=args.codec, profile_dir=args.profile)


def render(settings: E2ESettings, results: Sequence[E2EResult], command: str) -> str:
    """The markdown section for BENCHMARKS.md."""
    parts = [describe_run(settings, command), "", format_table(results)]
    floor = format_official_floor(results)
    if floor:
        parts += ["", floor]
    late = format_late_wakes(results)
    if late:
        parts += ["", "Late event-loop wakes in the subscribers:", "", late]
    spots = format_hot_spots(results)
    if spots:
        parts += ["", "Hot spots during the measured window:", "", spots]
    return "\n".join(parts)


def run_benchmark(args: argparse.Namespace, command: str) -> tuple[int, str]:
    """Run the e2e rows from parsed options; (exit status, markdown section)."""
    settings = settings_from(args)
    rows = parse_rows(args.rows)
    print(describe_run(settings, command), flush=True)
    print(TABLE_HEADER, flush=True)
    results = asyncio.run(run_e2e(settings, rows))
    section = render(settings, results, command)
    for extra in (
        format_official_floor(results),
        format_late_wakes(results),
        format_hot_spots(results),
    ):
        if extra:
            print("\n" + extra)
    failed = any(result.error is not None for result in results)
    return (1 if failed else 0), section


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kitewire.bench.e2e``."""
    from kitewire.bench import _markdown

    return _markdown.script_main(
        argv,
        script="e2e",
        description=__doc__.split("\n")[0] if __doc__ else "",
        quick_help="5 s per row",
        section=SECTION,
        add_arguments=add_arguments,
        run_benchmark=run_benchmark,
    )


if __name__ == "__main__":
    sys.exit(main())
