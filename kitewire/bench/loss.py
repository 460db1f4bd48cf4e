"""Loss benchmark: kitewire -> kitewire beside official -> official with UDP packets dropped.

``kitewire bench loss`` runs, for each frame size (640x480, 1280x720) and each
loss rate (5 %, 20 %), the kitewire pair and the official pair one right after
the other through one in-process kitewire server, with the end-to-end
benchmark's peers and figures (:mod:`kitewire.bench.e2e`). Both pairs of a
configuration see the same loss and nearly the same machine load.

Loss is made by nftables in a network namespace of the benchmark's own: the
command re-executes itself under ``unshare --net`` (it needs root, iproute2 and
nft), brings up ``lo`` and a veth pair at 198.18.0.1/24 (libwebrtc gathers ICE
candidates only on a non-loopback interface) and adds a table dropping a
random share of ALL UDP on the input hook: media and RTCP, both directions,
every hop (publisher -> server and server -> subscriber), as a lossy link
would. The signal WebSocket (TCP) is untouched. A drop on the input hook is
silent; one on the output hook would make ``sendto()`` fail in the sender.
Loss starts once the subscriber has its first frame: what is measured is how
a flowing stream holds up, not how long ICE and DTLS take to connect over a
lossy link (their retransmission back-off can take tens of seconds there).

:func:`udp_loss` is the same table as a context manager, for tests that already
run in a private namespace (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from kitewire.bench._children import load_average
from kitewire.bench._peers import BITRATE
from kitewire.bench.e2e import E2EResult, E2ESettings, parse_rows, run_row

SECTION = "loss"
ROWS: tuple[tuple[str, str], ...] = (("kitewire", "kitewire"), ("official", "official"))
DEFAULT_RATES = (5, 20)
DEFAULT_SIZES = ((640, 480), (1280, 720))
NFT_TABLE = "kitewire_loss"
INSIDE_ENV = "KITEWIRE_LOSS_NAMESPACE"
_VETH = ("kwloss0", "kwloss1")
_VETH_ADDRESS = "198.18.0.1/24"


def _nft(script: str) -> None:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    completed = subprocess.run([nft, "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise OSError(f"nft failed ({completed.returncode}): {completed.stderr.strip()}")


def set_udp_loss(percent: int) -> None:
    """Drop ``percent`` % of incoming UDP in this network namespace (0 removes the table)."""
    if not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"loss: expected a whole percentage 0..100, got {percent!r}")
    clear_udp_loss()
    if percent == 0:
        return
    # numgen's value is 0..99, which "< 100" cannot be compared with: drop all instead
    sample = "" if percent == 100 else f"numgen random mod 100 < {percent} "
    _nft(
        f"table inet {NFT_TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority 0;\n"
        f"    meta l4proto udp {sample}drop\n"
        "  }\n"
        "}\n"
    )


def clear_udp_loss() -> None:
    """Remove the loss table if it is there."""
    with contextlib.suppress(OSError):
        _nft(f"delete table inet {NFT_TABLE}\n")


@contextlib.contextmanager
def udp_loss(percent: int) -> Iterator[None]:
    """Drop ``percent`` % of incoming UDP in this network namespace while the block runs.

    Only for a namespace of the caller's own (the test suite's, or the
    benchmark's): never the host's.
    """
    set_udp_loss(percent)
    try:
        yield
    finally:
        clear_udp_loss()


@dataclass
class LossSettings:
    """What one loss run measures."""

    seconds: float = 20.0
    warmup: float = 5.0
    rates: tuple[int, ...] = DEFAULT_RATES
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    codec: str = "VP8"
    rows: tuple[tuple[str, str], ...] = ROWS

    def e2e(self, width: int, height: int) -> E2ESettings:
        """The end-to-end settings of one configuration."""
        return E2ESettings(seconds=self.seconds, warmup=self.warmup, width=width, height=height, codec=self.codec)


@dataclass
class LossResult:
    """One row at one size and loss rate."""

    width: int
    height: int
    loss: int
    result: E2EResult


@dataclass
class LossRun:
    """All rows of a run, in the order they ran."""

    settings: LossSettings
    results: list[LossResult] = field(default_factory=list)

    def anchor(self, entry: LossResult) -> LossResult | None:
        """The official pair's row of the same size and loss."""
        for other in self.results:
            if (
                (other.width, other.height, other.loss) == (entry.width, entry.height, entry.loss)
                and other.result.publisher == other.result.subscriber == "official"
                and other.result.error is None
            ):
                return other
        return None


async def run_loss(settings: LossSettings, *, progress: bool = True) -> LossRun:
    """Every size x loss x row through one in-process server (in the current namespace)."""
    from kitewire.server import Server, ServerConfig

    run = LossRun(settings)
    async with Server(ServerConfig.dev(port=0, log_level="warning")) as server:
        for width, height in settings.sizes:
            for rate in settings.rates:
                for publisher, subscriber in settings.rows:
                    try:
                        result = await run_row(
                            server.url,
                            publisher,
                            subscriber,
                            settings.e2e(width, height),
                            on_first_frame=functools.partial(set_udp_loss, rate),
                        )
                    finally:
                        clear_udp_loss()
                    entry = LossResult(width, height, rate, result)
                    run.results.append(entry)
                    if progress:
                        print(format_row(run, entry), flush=True)
    return run


TABLE_HEADER = (
    "| size | UDP loss | publisher -> subscriber | fps delivered (captured) | freezes > 200 ms | longest gap ms "
    "| frames lost | p50 ms | received width | load avg | fps vs official pair |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|"
)


def format_row(run: LossRun, entry: LossResult) -> str:
    """One markdown row."""
    result = entry.result
    size = f"{entry.width}x{entry.height}"
    if result.error is not None:
        reason = result.error.replace("|", "/")[:300]
        return f"| {size} | {entry.loss} % | {result.label} | - | - | - | - | - | - | - | failed: {reason} |"
    anchor = run.anchor(entry)
    if result.publisher == result.subscriber == "official":
        ratio = "anchor"
    elif anchor is None or anchor.result.fps <= 0:
        ratio = "-"
    else:
        ratio = f"{result.fps / anchor.result.fps:.2f}x"
    p50 = result.latency(0.5)
    load = "-" if result.load is None else f"{result.load:.1f}"
    return (
        f"| {size} | {entry.loss} % | {result.label} | {result.fps:.1f} ({result.captured_fps:.1f}) "
        f"| {result.freezes} | {result.longest_gap_ms:.0f} | {result.lost} | {'-' if p50 is None else f'{p50:.0f}'} "
        f"| {'/'.join(result.sizes) or '-'} | {load} | {ratio} |"
    )


def describe_run(settings: LossSettings, command: str) -> str:
    """Heading lines: command and conditions."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "## Under packet loss (`kitewire bench loss`)\n\n"
        f"Command: `{command}`\n\n"
        f"Run {now}: {settings.codec} at 30 fps, {BITRATE / 1e6:g} Mbps maximum, "
        f"{settings.seconds:g} s measured per row after "
        f"{settings.warmup:g} s of warm-up, publisher and subscriber each in its own process, one in-process "
        f"kitewire server, in a network namespace of the run's own where nftables drops that share of all UDP "
        "on the input hook (media and RTCP, both directions, on both hops: publisher -> server and server -> "
        "subscriber) from the subscriber's first frame on, through the warm-up and the measured window; the "
        "signal WebSocket is TCP and untouched. The two pairs of a size and loss rate ran one "
        f"right after the other. Python {platform.python_version()}, load average before the run "
        f"{load_average()} (2 cores shared with other work). fps: frames the subscriber's `VideoStream` "
        "yielded per second; freezes: gaps over 200 ms between yields."
    )


def render(run: LossRun, command: str) -> str:
    """The markdown section."""
    rows = [format_row(run, entry) for entry in run.results]
    return "\n".join([describe_run(run.settings, command), "", TABLE_HEADER, *rows])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the loss benchmark (``--seconds``, ``--warmup``, ``--codec`` come from e2e)."""
    parser.add_argument("--loss-rates", default=None, help="comma-separated UDP loss percentages (default 5,20)")
    parser.add_argument("--loss-sizes", default=None, help="comma-separated frame sizes (default 640x480,1280x720)")


def _parse_rates(text: str | None) -> tuple[int, ...]:
    if not text:
        return DEFAULT_RATES
    rates = []
    for item in text.split(","):
        try:
            rate = int(item)
        except ValueError:
            raise ValueError(f"--loss-rates: expected whole percentages like 5,20, got {item!r}") from None
        if not 0 <= rate <= 100:
            raise ValueError(f"--loss-rates: expected percentages 0..100, got {rate}")
        rates.append(rate)
    return tuple(rates)


def _parse_sizes(text: str | None) -> tuple[tuple[int, int], ...]:
    if not text:
        return DEFAULT_SIZES
    sizes = []
    for item in text.split(","):
        try:
            width_text, height_text = item.strip().lower().split("x")
            width, height = int(width_text), int(height_text)
        except ValueError:
            raise ValueError(f"--loss-sizes: expected sizes like 640x480, got {item!r}") from None
        if width < 16 or height < 16:
            raise ValueError(f"--loss-sizes: expected at least 16x16, got {item!r}")
        sizes.append((width, height))
    return tuple(sizes)


def settings_from(args: argparse.Namespace) -> LossSettings:
    """Settings from parsed command-line options."""
    quick = bool(getattr(args, "quick", False))
    seconds = args.seconds if getattr(args, "seconds", None) is not None else (8.0 if quick else 20.0)
    warmup = args.warmup if getattr(args, "warmup", None) is not None else (4.0 if quick else 5.0)
    if seconds <= 0 or warmup < 0:
        raise ValueError(f"expected seconds > 0 and warmup >= 0, got {seconds} and {warmup}")
    return LossSettings(
        seconds=seconds,
        warmup=warmup,
        rates=_parse_rates(getattr(args, "loss_rates", None)),
        sizes=_parse_sizes(getattr(args, "loss_sizes", None)),
        codec=getattr(args, "codec", "VP8"),
        rows=tuple(parse_rows(args.rows)) if getattr(args, "rows", None) else ROWS,
    )


def _setup_namespace() -> None:
    """Inside the fresh namespace: lo up and a veth pair for libwebrtc's candidates."""
    first, second = _VETH
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", first, "type", "veth", "peer", "name", second],
        ["ip", "addr", "add", _VETH_ADDRESS, "dev", first],
        ["ip", "link", "set", first, "up"],
        ["ip", "link", "set", second, "up"],
    ):
        subprocess.run(command, check=True, capture_output=True, text=True)


def _reexec_in_namespace() -> int:
    """Run this same command again under ``unshare --net``; its exit status."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or shutil.which("ip") is None:
        print("kitewire bench loss: needs root, unshare and iproute2 for a network namespace", file=sys.stderr)
        return 2
    # `kitewire bench loss ...` or `python -m kitewire.bench.loss ...`
    words = sys.argv[1:] if sys.argv[1:2] == ["bench"] else ["bench", "loss", *sys.argv[1:]]
    environment = dict(os.environ, **{INSIDE_ENV: "1"})
    command = [unshare, "--net", "--", sys.executable, "-m", "kitewire", *words]
    return subprocess.run(command, env=environment, check=False).returncode


def run(args: argparse.Namespace) -> int:
    """``kitewire bench loss``: re-executes itself in a namespace of its own, runs, writes its section."""
    from kitewire.bench import _markdown

    try:
        settings = settings_from(args)
    except ValueError as error:
        print(f"kitewire bench loss: {error}", file=sys.stderr)
        return 2
    if os.environ.get(INSIDE_ENV) != "1":
        return _reexec_in_namespace()
    _setup_namespace()
    command = shown_command(args)
    print(describe_run(settings, command), flush=True)
    print(TABLE_HEADER, flush=True)
    try:
        loss_run = asyncio.run(run_loss(settings))
    finally:
        clear_udp_loss()
    _markdown.write_if_asked(args, SECTION, render(loss_run, command))
    return 1 if any(entry.result.error is not None for entry in loss_run.results) else 0


def shown_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, for the section."""
    words = ["kitewire", "bench", "loss"] + (["--quick"] if args.quick else [])
    for flag, value in (
        ("--seconds", getattr(args, "seconds", None)),
        ("--warmup", getattr(args, "warmup", None)),
        ("--loss-rates", getattr(args, "loss_rates", None)),
        ("--loss-sizes", getattr(args, "loss_sizes", None)),
        ("--rows", getattr(args, "rows", None)),
    ):
        if value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if getattr(args, "codec", "VP8") != "VP8":
        words += ["--codec", args.codec]
    return shlex.join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kitewire.bench.loss``: same as ``kitewire bench loss``."""
    from kitewire import cli

    return cli.main(["bench", "loss", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
