"""What the measuring tools read of a process from /proc: CPU time, run-queue wait, RSS, open fds.

Linux only; the benchmarks and the load test measure their child processes
(server, publisher, subscriber) with these, each apart from the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "child_pids",
    "process_cpu_seconds",
    "process_open_fds",
    "process_rss_bytes",
    "run_queue_wait_seconds",
    "tree_cpu_seconds",
    "tree_rss_bytes",
]

T = TypeVar("T")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all its threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as stat_file:
        text = stat_file.read().decode("ascii", "replace")
    # The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def run_queue_wait_seconds(pid: int) -> float | None:
    """Seconds the main thread of ``pid`` spent runnable but not running (None where unavailable)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as stat_file:
            fields = stat_file.read().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def process_rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid``, from VmRSS in /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status_file:
        for line in status_file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"expected a VmRSS line in /proc/{pid}/status, found none (a kernel thread or a zombie?)")


def process_open_fds(pid: int) -> int:
    """How many file descriptors process ``pid`` holds open, from /proc/<pid>/fd."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (a kitewire peer's media process), from /proc/<pid>/task/*/children."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                children.extend(int(child) for child in listing.read().split())
        except (OSError, ValueError):
            continue
    return children


def _over_tree(pid: int, read: Callable[[int], T]) -> list[T]:
    # a child that ended between listing and reading is simply left out
    values = [read(pid)]
    for child in child_pids(pid):
        try:
            values.append(read(child))
        except (OSError, ValueError):
            continue
    return values


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children: a kitewire application's own and its
    media process's, so the two designs are compared on all the CPU they use."""
    return sum(_over_tree(pid, process_cpu_seconds))


def tree_rss_bytes(pid: int) -> int:
    """RSS of ``pid`` plus its live children's (shared frame slots are counted in both)."""
    return sum(_over_tree(pid, process_rss_bytes))
