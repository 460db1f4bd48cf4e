"""The whole benchmark suite: ``kitewire bench e2e|memory|load|all [--quick]``.

``all`` runs, one after the other, the conversion benchmark
(``kitewire bench convert``), the end-to-end rows (:mod:`kitewire.bench.e2e`),
the SFU capacity rows (:mod:`kitewire.bench.sfu`, in a child process) and
the memory rows (:mod:`kitewire.bench.memory`). Each part's table replaces
its own section of the markdown file given by ``--output`` (default
BENCHMARKS.md), between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
the rest of the file is left as it is. ``--quick`` keeps the whole suite under
about two minutes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from kitewire.bench import _markdown, e2e, memory
from kitewire.bench._children import load_average

SUITE_BENCHMARKS = ("e2e", "memory", "load", "all")
SFU_MODULE = "kitewire.bench.sfu"
# the parts' own time limits are far below these; they only stop a hung child
CONVERT_TIMEOUT_S = 1800
SFU_TIMEOUT_S = 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's options, for a parser that already has ``--quick``."""
    e2e.add_arguments(parser)
    memory.add_arguments(parser)
    _markdown.add_output_arguments(parser)


def run_captured(command: Sequence[str], timeout: float, cwd: Path | None = None) -> tuple[int, str]:
    """Run a child, echoing its output as it comes; (exit status, output)."""
    lines: list[str] = []
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        bufsize=1,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        status = process.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        process.kill()
        process.wait()
        raise
    return status, "".join(lines)


def code_section(command: str, output: str, status: int, load: str) -> str:
    """A section holding a script's printed output verbatim.

    It carries no title: the title and prose of a part owned by another script
    stay outside the markers, so a rerun replaces only the figures.
    """
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed = "" if status == 0 else f"\n\nThe command exited with status {status}."
    return (
        f"Command: `{command}`, run {now}, load average before the run {load}:{failed}\n\n```\n{output.rstrip()}\n```"
    )


def run_convert(args: argparse.Namespace) -> int:
    """The conversion benchmark, in a child process so its table is captured as printed."""
    command = [sys.executable, "-m", "kitewire", "bench", "convert"] + (["--quick"] if args.quick else [])
    shown = "kitewire bench convert" + (" --quick" if args.quick else "")
    load = load_average()
    status, output = run_captured(command, CONVERT_TIMEOUT_S)
    section = code_section(shown, output, status, load)
    _markdown.write_if_asked(
        args,
        "convert",
        section,
        heading="## Frame conversions (`kitewire bench convert`)",
    )
    return status


def run_load(args: argparse.Namespace) -> int:
    """The SFU capacity rows, in a child process of their own."""
    arguments = ["--quick"] if args.quick else []
    shown = shlex.join(["python", "-m", SFU_MODULE, *arguments])
    load = load_average()
    status, output = run_captured([sys.executable, "-m", SFU_MODULE, *arguments], SFU_TIMEOUT_S)
    section = code_section(shown, output, status, load)
    _markdown.write_if_asked(args, "sfu", section, heading=f"## SFU capacity (`python -m {SFU_MODULE}`)")
    return status


def run_e2e(args: argparse.Namespace, command: str) -> int:
    """The end-to-end rows."""
    status, section = e2e.run_benchmark(args, command)
    _markdown.write_if_asked(args, e2e.SECTION, section)
    return status


def run_memory(args: argparse.Namespace, command: str) -> int:
    """The memory rows."""
    status, section = memory.run_benchmark(args, command)
    _markdown.write_if_asked(args, memory.SECTION, section)
    return status


def shown_command(args: argparse.Namespace, part: str) -> str:
    """The ``kitewire bench`` command line that reproduces ``part`` of this run, for the tables."""
    words = ["kitewire", "bench", args.benchmark] + (["--quick"] if args.quick else [])
    options: list[tuple[str, object]] = []
    if part == "e2e":
        options = [
            ("--seconds", args.seconds),
            ("--warmup", args.warmup),
            ("--rows", args.rows),
        ]
        if args.codec != "VP8":
            options.append(("--codec", args.codec))
    elif part == "memory":
        options = [
            ("--memory-seconds", args.memory_seconds),
            ("--memory-rows", args.memory_rows),
        ]
    for flag, value in options:
        if value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    """Run ``args.benchmark`` (e2e, memory, load or all); non-zero when a part failed."""
    which = args.benchmark
    if which not in SUITE_BENCHMARKS:
        raise ValueError(f"expected one of {', '.join(SUITE_BENCHMARKS)}, got {which!r}")
    quick = " --quick" if args.quick else ""
    try:
        e2e.settings_from(args)
        e2e.parse_rows(args.rows)
        memory.settings_from(args)
        memory.parse_rows(args.memory_rows)
    except ValueError as error:
        print(f"kitewire bench: {error}", file=sys.stderr)
        return 2
    statuses: list[int] = []
    print(
        f"kitewire bench {which}{quick}: {os.cpu_count()} cpus, load average {load_average()}",
        flush=True,
    )
    if which == "all":
        statuses.append(run_convert(args))
    if which in ("e2e", "all"):
        statuses.append(run_e2e(args, shown_command(args, "e2e")))
    if which in ("load", "all"):
        statuses.append(run_load(args))
    if which in ("memory", "all"):
        statuses.append(run_memory(args, shown_command(args, "memory")))
    return next((status for status in statuses if status != 0), 0)
