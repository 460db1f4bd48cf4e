"""Soak benchmark: 1280x720 at 30 fps through ``kitewire serve`` for minutes, kitewire and official pairs side by side.

``kitewire bench soak --minutes N`` starts ``kitewire serve --dev`` in its own
process and two pairs through it at the same time, each peer in its own process
(the peers of the end-to-end benchmark, :mod:`kitewire.bench._peers`):
kitewire -> kitewire and official -> official (the anchor). Both subscribers
read with ``VideoStream(capacity=0)``, so every decoded frame is yielded.

Every 10 s it prints a row: per pair the frames captured, yielded and lost so
far (a frame is lost when its counter, drawn in its pixels, was not yielded
within 3 s of its capture) and the freezes (gaps of more than 200 ms between
yields); per process (server, both publishers, both subscribers) the RSS
(VmRSS) and the number of open file descriptors. The summary gives each
process's RSS and fd growth from the end of the warm-up (minute 2, or a third
of a shorter run) to the end.

Peers hand their captures and yields over once a second instead of keeping
them, so their own bookkeeping does not grow their RSS over a long run.

Like the end-to-end benchmark it runs on the machine's own network: the dev
server binds 127.0.0.1, offers only loopback candidates and no ICE servers, and
libwebrtc sends from the machine's own address to it, so no packet leaves the
machine (the test suite adds a private network namespace; a benchmark run as a
plain command does not need one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import platform
import shlex
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from kitewire.bench import _markdown
from kitewire.bench._children import (
    Peer,
    PeerError,
    load_1min,
    load_average,
    peer_arguments,
)
from kitewire.bench.procfs import process_open_fds, process_rss_bytes
from kitewire.bench.server_process import EmbeddedServer

SECTION = "soak"
FREEZE_GAP_MS = 200.0
COUNTER_MODULO = 4096  # kitewire.demo's pattern carries 12 bits of counter
LATE_LIMIT_S = 3.0
"""A frame not yielded within this long after its capture counts as lost."""
REPORT_INTERVAL_S = 1.0
"""How often the peers hand over their captures and yields."""
WARMUP_S = 120.0
TARGET_RSS_GROWTH = 0.10
TARGET_FD_GROWTH = 0
MB = 1024 * 1024
PAIRS = ("kitewire", "official")
ROLES = ("publisher", "subscriber")


@dataclass
class SoakSettings:
    """How long and what the soak streams."""

    minutes: float = 30.0
    sample_seconds: float = 10.0
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    codec: str = "VP8"

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ValueError(f"--minutes: expected a positive number of minutes, got {self.minutes}")
        if not self.sample_seconds > 0:
            raise ValueError(f"expected sample_seconds > 0, got {self.sample_seconds}")

    @property
    def seconds(self) -> float:
        """The measured duration."""
        return self.minutes * 60.0

    @property
    def warmup(self) -> float:
        """Seconds before the RSS and fd baselines: two minutes, or a third of a shorter run."""
        return min(WARMUP_S, self.seconds / 3)


@dataclass
class FrameLedger:
    """Frames of one pair: captures matched to yields by the counter in their pixels, as they stream in."""

    start_ns: int = 0
    """Captures and yields before this moment are not counted."""
    sent: int = 0
    received: int = 0
    lost: int = 0
    freezes: int = 0
    longest_gap_ms: float = 0.0
    last_yield_ns: int | None = None
    publisher_skipped: int | None = None
    """Captures the kitewire publisher's encoder never took (a newer one replaced them), over its whole run."""
    _pending: dict[int, int] = field(default_factory=dict)
    """Capture index -> capture time, for captures not yet judged."""
    _matched: set[int] = field(default_factory=set)
    _newest_index: int = -1
    _yields: deque[tuple[int, int]] = field(default_factory=deque)
    """Yields (time, counter) not yet matched: their captures may still be on the way."""

    def add_captures(self, captures: Sequence[Sequence[int]]) -> None:
        """Captures reported by the publisher, as (index, capture time ns)."""
        for index, capture_ns in captures:
            if capture_ns < self.start_ns:
                continue
            self.sent += 1
            self._pending[index] = capture_ns
            self._newest_index = max(self._newest_index, index)

    def add_yields(self, frames: Sequence[Sequence[int]]) -> None:
        """Yields reported by the subscriber, as (yield time ns, counter or -1, width)."""
        for yield_ns, counter, _width in frames:
            if yield_ns < self.start_ns:
                continue
            self.received += 1
            previous = self.last_yield_ns if self.last_yield_ns is not None else self.start_ns
            self._note_gap(yield_ns - previous)
            self.last_yield_ns = yield_ns
            self._yields.append((yield_ns, counter))

    def _note_gap(self, gap_ns: int) -> None:
        gap_ms = gap_ns / 1e6
        self.longest_gap_ms = max(self.longest_gap_ms, gap_ms)
        if gap_ms > FREEZE_GAP_MS:
            self.freezes += 1

    def settle(self, now_ns: int) -> None:
        """Match yields and judge captures old enough that every report about them has arrived."""
        # both peers report once a second: what happened before this has been told
        horizon = now_ns - int(2 * REPORT_INTERVAL_S * 1e9)
        while self._yields and self._yields[0][0] <= horizon:
            yield_ns, counter = self._yields.popleft()
            if counter >= 0:
                self._match(yield_ns, counter)
        judged_before = horizon - int(LATE_LIMIT_S * 1e9)
        for index in [index for index, capture_ns in self._pending.items() if capture_ns <= judged_before]:
            del self._pending[index]
            if index in self._matched:
                self._matched.discard(index)
            else:
                self.lost += 1

    def _match(self, yield_ns: int, counter: int) -> None:
        # the newest capture carrying this counter and taken before the yield
        index = self._newest_index - (self._newest_index - counter) % COUNTER_MODULO
        while index >= 0:
            capture_ns = self._pending.get(index)
            if capture_ns is None:
                return  # already judged (a frame later than LATE_LIMIT_S) or before the start
            if capture_ns <= yield_ns:
                self._matched.add(index)
                return
            index -= COUNTER_MODULO

    def freezes_at(self, now_ns: int) -> int:
        """Freezes so far, counting one still going on (no yield for 200 ms before what has been reported)."""
        horizon = now_ns - int(2 * REPORT_INTERVAL_S * 1e9)
        previous = self.last_yield_ns if self.last_yield_ns is not None else self.start_ns
        return self.freezes + (1 if horizon - previous > FREEZE_GAP_MS * 1e6 else 0)

    def finish(self, end_ns: int) -> None:
        """Judge everything at the end of the run (its reports all in); a freeze still going counts."""
        self.settle(end_ns + int((2 * REPORT_INTERVAL_S + LATE_LIMIT_S) * 1e9))
        if self.last_yield_ns is None or end_ns - self.last_yield_ns > FREEZE_GAP_MS * 1e6:
            previous = self.last_yield_ns if self.last_yield_ns is not None else self.start_ns
            self._note_gap(end_ns - previous)


@dataclass
class Sample:
    """One row: the moment, each pair's counts so far, each process's RSS and fds."""

    elapsed_s: float
    frames: dict[str, tuple[int, int, int, int]]
    """Pair -> (sent, received, lost, freezes) so far."""
    rss: dict[str, int]
    fds: dict[str, int]
    load: float | None


@dataclass
class SoakResult:
    """Everything one soak run measured."""

    samples: list[Sample] = field(default_factory=list)
    ledgers: dict[str, FrameLedger] = field(default_factory=dict)
    error: str | None = None


def process_names() -> list[str]:
    """The measured processes, in table order."""
    return ["server"] + [f"{sdk[0]}-{role[:3]}" for sdk in PAIRS for role in ROLES]


async def _start_pair(url: str, sdk: str, settings: SoakSettings, room: str) -> tuple[Peer, Peer]:
    subscriber = await Peer.start(
        f"{sdk}-subscriber",
        ["subscribe", "--sdk", sdk, "--capacity", "0", "--read-interval", "0"]
        + ["--report-interval", str(REPORT_INTERVAL_S)]
        + peer_arguments(url, room, "soak-subscriber", settings),
    )
    try:
        await subscriber.wait_event("connected", 60)
        publisher = await Peer.start(
            f"{sdk}-publisher",
            ["publish", "--sdk", sdk, "--seconds", str(settings.seconds + 120)]
            + ["--report-interval", str(REPORT_INTERVAL_S)]
            + peer_arguments(url, room, "soak-publisher", settings),
        )
    except BaseException:
        await subscriber.stop()
        raise
    return publisher, subscriber


async def _pump(peer: Peer, ledger: FrameLedger, final: str) -> None:
    """Feed a peer's chunks into the pair's ledger until its final report."""
    while True:
        event = await peer.next_event(60)
        name = event["event"]
        if name in ("capture_chunk", "captures"):
            ledger.add_captures(event["captures"])
        if name == "captures" and isinstance(event.get("skipped"), int):
            ledger.publisher_skipped = event["skipped"]
        elif name in ("frame_chunk", "frames"):
            ledger.add_yields(event["frames"])
        if name == final:
            return


def _sample(
    elapsed_s: float, pids: dict[str, int], ledgers: dict[str, FrameLedger], now_ns: int, result: SoakResult
) -> Sample:
    rss: dict[str, int] = {}
    fds: dict[str, int] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, ValueError):
            rss[name] = process_rss_bytes(pid)
            fds[name] = process_open_fds(pid)
    frames = {}
    for sdk, ledger in ledgers.items():
        ledger.settle(now_ns)
        frames[sdk] = (ledger.sent, ledger.received, ledger.lost, ledger.freezes_at(now_ns))
    sample = Sample(elapsed_s, frames, rss, fds, load_1min())
    result.samples.append(sample)
    return sample


async def run_soak(settings: SoakSettings, *, progress: bool = True) -> SoakResult:
    """Both pairs through one ``kitewire serve`` for ``settings.minutes``, sampled every ``sample_seconds``."""
    result = SoakResult()
    server: EmbeddedServer | None = None
    peers: dict[str, tuple[Peer, Peer]] = {}
    pumps: list[asyncio.Task[None]] = []
    try:
        server = EmbeddedServer()
        await server.start()
        for sdk in PAIRS:
            peers[sdk] = await _start_pair(server.url, sdk, settings, f"soak-{sdk}")
        for publisher, subscriber in peers.values():
            await publisher.wait_event("capturing", 60)
            await subscriber.wait_event("first_frame", 60)
        start_ns = time.monotonic_ns()
        pids = {"server": server.pid}
        for sdk, (publisher, subscriber) in peers.items():
            pids[f"{sdk[0]}-pub"], pids[f"{sdk[0]}-sub"] = publisher.pid, subscriber.pid
            ledger = result.ledgers[sdk] = FrameLedger(start_ns=start_ns)
            pumps.append(asyncio.create_task(_pump(publisher, ledger, "captures")))
            pumps.append(asyncio.create_task(_pump(subscriber, ledger, "frames")))
        if progress:
            print(TABLE_HEADER, flush=True)
        for tick in itertools.count(0):
            due_ns = start_ns + int(tick * settings.sample_seconds * 1e9)
            await _sleep_until(due_ns, pumps)
            now_ns = time.monotonic_ns()
            sample = _sample((now_ns - start_ns) / 1e9, pids, result.ledgers, now_ns, result)
            if progress:
                print(format_sample(sample), flush=True)
            if sample.elapsed_s >= settings.seconds - 0.5:
                break
        end_ns = time.monotonic_ns()
        # the subscribers first, so the publishers still send while they report
        for _publisher, subscriber in peers.values():
            subscriber.close_stdin()
        for publisher, _subscriber in peers.values():
            publisher.close_stdin()
        await asyncio.wait_for(asyncio.gather(*pumps), 90)
        for ledger in result.ledgers.values():
            ledger.finish(end_ns)
    except (PeerError, OSError, ValueError, TimeoutError, RuntimeError) as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        for pump in pumps:
            pump.cancel()
        for publisher, subscriber in peers.values():
            await publisher.stop()
            await subscriber.stop()
        if server is not None:
            await server.stop()
    return result


async def _sleep_until(due_ns: int, pumps: Sequence[asyncio.Task[None]]) -> None:
    """Sleep until ``due_ns``; a pump that failed (a peer died or went silent) ends the run."""
    delay = max(0.0, (due_ns - time.monotonic_ns()) / 1e9)
    done, _ = await asyncio.wait(pumps, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        error = task.exception()
        if error is not None:
            raise PeerError(str(error)) from error
        raise PeerError("a peer reported its end before the run was over")


TABLE_HEADER = (
    "| t s | k->k sent / recv / lost / freezes | o->o sent / recv / lost / freezes "
    "| RSS MB " + " / ".join(process_names()) + " | fds " + " / ".join(process_names()) + " | load |\n"
    "|---:|---:|---:|---:|---:|---:|"
)


def format_sample(sample: Sample) -> str:
    """One markdown row."""
    cells = [f"{sample.elapsed_s:.0f}"]
    for sdk in PAIRS:
        counts = sample.frames.get(sdk)
        cells.append(" / ".join(str(value) for value in counts) if counts else "-")
    names = process_names()
    cells.append(" / ".join(f"{sample.rss[name] / MB:.0f}" if name in sample.rss else "-" for name in names))
    cells.append(" / ".join(str(sample.fds[name]) if name in sample.fds else "-" for name in names))
    cells.append("-" if sample.load is None else f"{sample.load:.1f}")
    return "| " + " | ".join(cells) + " |"


@dataclass
class Growth:
    """One process's RSS and fds at the end of the warm-up and at the end."""

    name: str
    rss_start: int
    rss_end: int
    rss_max: int
    fds_start: int
    fds_end: int
    fds_max: int

    @property
    def rss_growth(self) -> float:
        """End over start, minus one."""
        return self.rss_end / self.rss_start - 1.0 if self.rss_start else 0.0

    @property
    def flat(self) -> bool:
        """RSS within the target after warm-up and no more fds than at its end."""
        return (
            self.rss_growth <= TARGET_RSS_GROWTH
            and self.rss_max <= self.rss_start * (1 + TARGET_RSS_GROWTH)
            and self.fds_end - self.fds_start <= TARGET_FD_GROWTH
        )


def growth(result: SoakResult, settings: SoakSettings) -> list[Growth]:
    """Per process: RSS and fds from the first sample at or after the warm-up to the last sample."""
    after = [sample for sample in result.samples if sample.elapsed_s >= settings.warmup - 0.5]
    rows = []
    for name in process_names():
        rss = [sample.rss[name] for sample in after if name in sample.rss]
        fds = [sample.fds[name] for sample in after if name in sample.fds]
        if len(rss) < 2 or len(fds) < 2:
            continue
        rows.append(Growth(name, rss[0], rss[-1], max(rss), fds[0], fds[-1], max(fds)))
    return rows


def format_summary(result: SoakResult, settings: SoakSettings) -> str:
    """The frames table per pair and the growth table per process."""
    lines = [
        "| pair | frames sent | frames received | frames lost | captures never encoded | freezes > 200 ms "
        "| longest gap ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for sdk, ledger in result.ledgers.items():
        skipped = "-" if ledger.publisher_skipped is None else str(ledger.publisher_skipped)
        lines.append(
            f"| {sdk} -> {sdk} | {ledger.sent} | {ledger.received} | {ledger.lost} | {skipped} | {ledger.freezes} "
            f"| {ledger.longest_gap_ms:.0f} |"
        )
    lines += [
        "",
        f"| process | RSS MB at {settings.warmup:.0f} s | RSS MB at end | RSS MB max | RSS growth | "
        f"fds at {settings.warmup:.0f} s | fds at end | fds max | flat |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in growth(result, settings):
        lines.append(
            f"| {row.name} | {row.rss_start / MB:.1f} | {row.rss_end / MB:.1f} | {row.rss_max / MB:.1f} "
            f"| {row.rss_growth * 100:+.1f}% | {row.fds_start} | {row.fds_end} | {row.fds_max} "
            f"| {'yes' if row.flat else 'NO'} |"
        )
    loads = [sample.load for sample in result.samples if sample.load is not None]
    if loads:
        lines += [
            "",
            f"1-minute load average over the run: median {statistics.median(loads):.1f}, max {max(loads):.1f} "
            f"(2 cores, shared with other work).",
        ]
    return "\n".join(lines)


def verdict(result: SoakResult, settings: SoakSettings) -> list[str]:
    """The targets missed: frames lost or freezes in the kitewire pair, a process not flat."""
    if result.error is not None:
        return [f"failed: {result.error}"]
    missed = []
    kitewire = result.ledgers.get("kitewire")
    if kitewire is None or kitewire.lost:
        missed.append(f"kitewire pair lost {kitewire.lost if kitewire else '?'} frames")
    if kitewire is not None and kitewire.freezes:
        missed.append(f"kitewire pair froze {kitewire.freezes} times")
    missed += [f"{row.name} not flat" for row in growth(result, settings) if not row.flat]
    return missed


def describe_run(settings: SoakSettings, command: str) -> str:
    """Heading lines: command and conditions."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## Soak, {settings.width}x{settings.height} at {settings.fps:g} fps for {settings.minutes:g} minutes "
        "(`kitewire bench soak`)\n\n"
        f"Command: `{command}`\n\n"
        f"Run {now}: {settings.codec}, kitewire -> kitewire and official -> official at the same time through one "
        "`kitewire serve --dev` in its own process, each peer in its own process, both subscribers reading "
        f"`VideoStream(capacity=0)`; python {platform.python_version()}, load average before the run "
        f"{load_average()}. Frames are matched by the counter in their pixels; lost = captured after the start "
        f"but not yielded within {LATE_LIMIT_S:g} s; freezes = gaps over {FREEZE_GAP_MS:.0f} ms between yields. "
        "Captures never encoded: frames the kitewire publisher's encoder skipped because a newer capture replaced "
        "them while it was busy (CPU contention), over the publisher's whole run. "
        "RSS (VmRSS) and open fds per process (server; k/o = kitewire/official; pub/sub). Targets: zero frames "
        f"lost and no freeze in the kitewire pair, RSS within {TARGET_RSS_GROWTH:.0%} after the warm-up "
        f"({settings.warmup:.0f} s) in every process, fds no more at the end than after the warm-up."
    )


def render(settings: SoakSettings, result: SoakResult, description: str) -> str:
    """The markdown section under ``description`` (:func:`describe_run` taken at the start):
    one row a minute (every row was printed), the summary, the verdict."""
    per_minute = max(1, round(60 / settings.sample_seconds))
    shown = [sample for index, sample in enumerate(result.samples) if index % per_minute == 0]
    if result.samples and result.samples[-1] not in shown:
        shown.append(result.samples[-1])
    missed = verdict(result, settings)
    parts = [
        description,
        "",
        f"One row a minute of the {settings.sample_seconds:g}-second samples (counts are totals so far):",
        "",
        TABLE_HEADER,
        *(format_sample(sample) for sample in shown),
        "",
        format_summary(result, settings),
        "",
        "Targets met." if not missed else "Targets missed: " + "; ".join(missed) + ".",
    ]
    return "\n".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--minutes``."""
    parser.add_argument("--minutes", type=float, default=None, help="soak: how long to stream (default 30)")


def settings_from(args: argparse.Namespace) -> SoakSettings:
    """Settings from parsed options (``--quick``: one minute)."""
    minutes = args.minutes if args.minutes is not None else (1.0 if getattr(args, "quick", False) else 30.0)
    return SoakSettings(minutes=minutes, codec=getattr(args, "codec", "VP8"))


def run(args: argparse.Namespace) -> int:
    """``kitewire bench soak``: run, print the rows and summary, write the section; the exit status."""
    try:
        settings = settings_from(args)
    except ValueError as error:
        print(f"kitewire bench: {error}", file=sys.stderr)
        return 2
    command = shlex.join(["kitewire", "bench", "soak", "--minutes", f"{settings.minutes:g}"])
    description = describe_run(settings, command)
    print(description, flush=True)
    result = asyncio.run(run_soak(settings))
    print()
    print(format_summary(result, settings))
    missed = verdict(result, settings)
    print("\n" + ("Targets met." if not missed else "Targets missed: " + "; ".join(missed) + "."))
    _markdown.write_if_asked(args, SECTION, render(settings, result, description))
    return 1 if result.error is not None else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kitewire.bench.soak``."""
    parser = argparse.ArgumentParser(prog="python -m kitewire.bench.soak", description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="one minute")
    _markdown.add_output_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
