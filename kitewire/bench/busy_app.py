"""``kitewire bench busy-app``: media while the application's own Python code keeps the GIL.

Three cases, each for kitewire and for the official ``livekit`` SDK in the same run,
through one in-process kitewire server, with the end-to-end rows' peers
(:mod:`kitewire.bench._peers`, one process per peer) and figures
(:mod:`kitewire.bench.e2e`):

- ``idle``: publisher and subscriber do nothing else (the anchor for case b);
- ``a``: the publisher paints every 1280x720 RGBA frame as livekit's ``publish_hue.py``
  does (strided ``ndarray.flat`` writes, holding the GIL) before each 30 fps capture;
  target: the subscriber gets at least 95 % of the captured frames, and no fewer than
  the official SDK's share;
- ``b``: the subscriber reads with ``capacity=1`` and holds the GIL for 25 ms in pure
  Python after every frame; target: every yielded frame is under 100 ms old and the
  latency p95 stays within 1.5x the idle case's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from kitewire.bench._children import load_average
from kitewire.bench.e2e import E2EResult, E2ESettings, run_row

CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "idle": ((), ()),
    "a": (("--busy-draw",), ()),
    "b": ((), ("--capacity", "1", "--busy-ms", "25")),
}
SDKS = ("kitewire", "official")
DELIVERED_SHARE_TARGET = 0.95
MAX_AGE_MS = 100.0
P95_RATIO_TARGET = 1.5


@dataclass
class BusyRow:
    """One case for one SDK."""

    case: str
    sdk: str
    result: E2EResult

    @property
    def share(self) -> float:
        """Frames yielded per frame captured in the window."""
        captured = self.result.captured
        return (captured - self.result.lost) / captured if captured else 0.0


async def run_cases(settings: E2ESettings, cases: Sequence[str], sdks: Sequence[str]) -> list[BusyRow]:
    """Every case for every SDK, one after the other (alternating SDKs within a case)."""
    from kitewire.server import Server, ServerConfig

    rows: list[BusyRow] = []
    async with Server(ServerConfig.dev(port=0, log_level="warning")) as server:
        for case in cases:
            publisher_options, subscriber_options = CASES[case]
            for sdk in sdks:
                result = await run_row(
                    server.url,
                    sdk,
                    sdk,
                    settings,
                    publisher_options=publisher_options,
                    subscriber_options=subscriber_options,
                )
                row = BusyRow(case, sdk, result)
                rows.append(row)
                print(format_row(row, rows), flush=True)
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


TABLE_HEADER = (
    "| case | sdk | captured fps | yielded / captured | latency p50 / p95 / max ms | p95 vs idle | verdict |\n"
    "|---|---|---|---|---|---|---|"
)


def _idle_p95(row: BusyRow, rows: Sequence[BusyRow]) -> float | None:
    for other in rows:
        if other.case == "idle" and other.sdk == row.sdk and other.result.latencies_ms:
            return other.result.latency(0.95)
    return None


def verdict(row: BusyRow, rows: Sequence[BusyRow]) -> str:
    """Whether ``row`` meets its case's target (kitewire rows; the official ones are the anchor)."""
    result = row.result
    if result.error:
        return f"error: {result.error}"
    if row.sdk != "kitewire" or row.case == "idle":
        return "anchor" if row.sdk != "kitewire" else "-"
    misses: list[str] = []
    if row.case == "a":
        official = next((r for r in rows if r.case == "a" and r.sdk == "official"), None)
        if row.share < DELIVERED_SHARE_TARGET:
            misses.append(f"share < {DELIVERED_SHARE_TARGET:.0%}")
        if official is not None and row.share < official.share:
            misses.append("below the official SDK")
    if row.case == "b":
        worst = max(result.latencies_ms) if result.latencies_ms else None
        if worst is None or worst >= MAX_AGE_MS:
            misses.append(f"a frame >= {MAX_AGE_MS:.0f} ms old")
        idle, p95 = _idle_p95(row, rows), result.latency(0.95)
        if idle is not None and p95 is not None and p95 > P95_RATIO_TARGET * idle:
            misses.append(f"p95 > {P95_RATIO_TARGET}x idle")
    return "meets" if not misses else "misses: " + ", ".join(misses)


def format_row(row: BusyRow, rows: Sequence[BusyRow]) -> str:
    """One markdown table row."""
    result = row.result
    worst = max(result.latencies_ms) if result.latencies_ms else None
    idle, p95 = _idle_p95(row, rows), result.latency(0.95)
    ratio = f"{p95 / idle:.2f}x" if idle and p95 is not None and row.case != "idle" else "-"
    return (
        f"| {row.case} | {row.sdk} | {result.captured_fps:.1f} | {row.share:.1%} "
        f"| {_ms(result.latency(0.5))} / {_ms(p95)} / {_ms(worst)} | {ratio} | {verdict(row, rows)} |"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of its own (``--seconds``/``--warmup`` are the e2e benchmark's, shared)."""
    parser.add_argument("--cases", default="idle,a,b", help="busy-app: comma-separated cases idle, a, b (default all)")
    parser.add_argument("--sdks", default="kitewire,official", help="busy-app: comma-separated kitewire, official")


def run(args: argparse.Namespace) -> int:
    """Run the chosen cases and print the table; non-zero when a kitewire row misses its target."""
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    sdks = [sdk.strip() for sdk in args.sdks.split(",") if sdk.strip()]
    unknown = [case for case in cases if case not in CASES] + [sdk for sdk in sdks if sdk not in SDKS]
    if unknown or not cases or not sdks:
        print(f"kitewire bench busy-app: unknown or no cases/sdks: {unknown}", file=sys.stderr)
        return 2
    settings = E2ESettings(seconds=args.seconds or 15.0, warmup=3.0 if args.warmup is None else args.warmup)
    print(
        f"kitewire bench busy-app: 1280x720 VP8 at 30 fps, {settings.seconds:.0f} s per row, "
        f"load average {load_average()} at the start"
    )
    print(TABLE_HEADER)
    rows = asyncio.run(run_cases(settings, cases, sdks))
    print(f"load average {load_average()} at the end")
    return 0 if all(not verdict(row, rows).startswith(("misses", "error")) for row in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kitewire.bench.busy_app``."""
    parser = argparse.ArgumentParser(prog="python -m kitewire.bench.busy_app")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per row (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window opens (default 3)")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
