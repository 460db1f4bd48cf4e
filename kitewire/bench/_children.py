"""Parent side of the benchmark peers: start them, read their events, measure them from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

_LINE_LIMIT = 64 * 1024 * 1024  # the final report of a peer is one (long) JSON line


class PeerError(RuntimeError):
    """A peer process failed or did not report in time."""


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads)."""
    times = os.times()
    return times.user + times.system


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for printing beside the figures."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def load_1min() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    if not values:
        raise ValueError("expected at least one value, got an empty sequence")
    ordered = sorted(values)
    # the tolerance keeps 0.95 * 100 (95.00000000000001 in floating point) at rank 95
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered) - 1e-9) - 1))
    return ordered[rank]


class VideoSettings(Protocol):
    """What a benchmark's settings say about the video its peers handle."""

    width: int
    height: int
    fps: float
    codec: str


def peer_arguments(url: str, room: str, identity: str, video: VideoSettings) -> list[str]:
    """The options every bench peer takes: where to join, as whom, and the video it handles."""
    from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

    token = create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)
    return [
        "--url", url, "--width", str(video.width), "--height", str(video.height),
        "--fps", str(video.fps), "--codec", video.codec, "--token", token,
    ]  # fmt: skip


class Peer:
    """One ``python -m kitewire.bench._peers`` child process."""

    def __init__(self, label: str, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.label = label
        self.process = process
        self._stderr_path = stderr_path
        self._events: dict[str, dict[str, Any]] = {}

    @classmethod
    async def start(cls, label: str, arguments: Sequence[str], *, module: str = "kitewire.bench._peers") -> Peer:
        """Start a peer; ``arguments`` follow ``python -m <module>`` (the video peers by default)."""
        handle, name = tempfile.mkstemp(prefix=f"kitewire-bench-{label}-", suffix=".log")
        stderr_path = Path(name)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *arguments,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=handle,
                limit=_LINE_LIMIT,
            )
        finally:
            os.close(handle)  # the child holds its own copy
        return cls(label, process, stderr_path)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def stderr_tail(self, lines: int = 5) -> str:
        """The last lines the child wrote to stderr (for error messages)."""
        with contextlib.suppress(OSError):
            text = self._stderr_path.read_text(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:])
        return ""

    async def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        """Read events until ``name`` arrives; PeerError on an error event, exit or timeout."""
        if name in self._events:
            return self._events[name]
        try:
            return await asyncio.wait_for(self._read_until(name), timeout)
        except TimeoutError:
            raise PeerError(
                f"{self.label} did not report {name!r} within {timeout:.0f} s: {self.stderr_tail()}"
            ) from None

    async def next_event(self, timeout: float) -> dict[str, Any]:
        """The next event, whatever its name (for peers streaming chunks); PeerError as in :meth:`wait_event`."""
        try:
            return await asyncio.wait_for(self._read_event("its next event"), timeout)
        except TimeoutError:
            raise PeerError(f"{self.label} reported nothing within {timeout:.0f} s: {self.stderr_tail()}") from None

    async def _read_until(self, name: str) -> dict[str, Any]:
        while True:
            event = await self._read_event(repr(name))
            if event["event"] == name:
                return event

    async def _read_event(self, awaited: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                await self.process.wait()
                raise PeerError(
                    f"{self.label} exited with status {self.process.returncode} before {awaited}: {self.stderr_tail()}"
                )
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a library printing to stdout; not ours
            if not isinstance(event, dict) or "event" not in event:
                continue
            self._events[str(event["event"])] = event
            if event["event"] == "error":
                raise PeerError(f"{self.label}: {event.get('message')}")
            return event

    def close_stdin(self) -> None:
        """Tell the peer to finish (it reports and exits)."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()

    async def stop(self, grace: float = 15.0) -> None:
        """Close stdin, wait up to ``grace`` seconds, then terminate and kill if needed."""
        self.close_stdin()
        if self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.terminate()
                try:
                    await asyncio.wait_for(self.process.wait(), 5)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        self.process.kill()
                    await self.process.wait()
        with contextlib.suppress(OSError):
            self._stderr_path.unlink()


class Profiler:
    """py-spy recording one peer for a fixed duration (optional, when --profile is given)."""

    def __init__(self, process: asyncio.subprocess.Process, output: Path) -> None:
        self.process = process
        self.output = output

    @classmethod
    async def start(cls, pid: int, seconds: float, output: Path) -> Profiler | None:
        """Record ``pid`` with native frames for ``seconds``; None when py-spy is missing."""
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(py_spy).exists():
            return None
        output.parent.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "200",
            "--threads",
            "--nonblocking",  # sampling without pausing the peer keeps its timing closer to an unprofiled run
            "--format",
            "raw",
            "--output",
            str(output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return cls(process, output)

    async def finish(self) -> Path | None:
        """Wait for the recording; the profile path, or None when py-spy failed."""
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        return self.output if self.output.exists() and self.output.stat().st_size > 0 else None


def hot_spots(profile: Path, top: int = 8) -> list[tuple[str, float]]:
    """(function (file:line), % of busy samples) with the most own time in a py-spy raw profile.

    py-spy records only threads that are running (no ``--idle``); samples whose
    leaf is still a wait (select/epoll/futex/sleep) are left out as well, so the
    percentages say where the CPU went, not where threads slept.
    """
    own: Counter[str] = Counter()
    total = 0
    # py-spy cannot tell a thread blocked inside a C call from a busy one; these
    # leaves are such waits: an idle executor worker in its queue's get(), the
    # peer's stdin watcher, and the usual pollers and locks
    idle_markers = (
        "_worker (concurrent/futures/thread.py",
        "stdin_closed.<locals>.wait",
        "epoll_wait",
        "select (",
        "futex",
        "poll (",
        "sleep",
        "_wait_for_tstate_lock",
        "wait (threading",
    )
    for line in profile.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        leaf = stack.split(";")[-1]
        if any(marker in leaf for marker in idle_markers):
            continue
        count = int(count_text)
        total += count
        own[leaf] += count
    if total == 0:
        return []
    return [(frame, 100.0 * count / total) for frame, count in own.most_common(top)]


def median_or_none(values: Sequence[float]) -> float | None:
    """Median of the values, or None when there are none."""
    return statistics.median(values) if values else None
