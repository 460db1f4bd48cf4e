"""``kitewire serve`` in a child process of its own, for the measuring tools.

The server runs apart from the clients that load it, so its CPU time, RSS and
open file descriptors are its own (read with :mod:`kitewire.bench.procfs`).
The child gets SIGTERM when the process that started it dies, even by SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

__all__ = ["EmbeddedServer"]


def _stop_with_parent() -> None:
    """In the child before exec: get SIGTERM when the load test dies, even by SIGKILL (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class EmbeddedServer:
    """``kitewire serve --dev --port 0`` in a child process, stopped on exit.

    The server runs in its own process so its CPU time can be measured apart
    from the simulated clients'.
    """

    def __init__(self, *, start_timeout: float = 30.0) -> None:
        self._start_timeout = start_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._drains: list[asyncio.Task[None]] = []
        self._stderr_tail: list[str] = []
        self.url = ""

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self._process is None:
            raise RuntimeError("embedded server not started")
        return self._process.pid

    async def start(self) -> None:
        """Start the child and wait until it says where it listens."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kitewire",
            "serve",
            "--dev",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "warning",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_stop_with_parent,
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        self._drains.append(asyncio.get_running_loop().create_task(self._drain(self._process.stderr, keep=True)))
        try:
            self.url = await asyncio.wait_for(self._read_url(self._process), self._start_timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"kitewire serve did not start listening within {self._start_timeout:g} s") from None
        except BaseException:
            await self.stop()
            raise
        self._drains.append(asyncio.get_running_loop().create_task(self._drain(self._process.stdout, keep=False)))

    async def _read_url(self, process: asyncio.subprocess.Process) -> str:
        assert process.stdout is not None
        marker = "listening on "
        while True:
            line = (await process.stdout.readline()).decode("utf-8", "replace")
            if not line:
                await process.wait()
                tail = "\n".join(self._stderr_tail[-10:])
                raise RuntimeError(f"kitewire serve exited with code {process.returncode}:\n{tail}")
            if marker in line:
                return line.split(marker, 1)[1].strip()

    async def _drain(self, stream: asyncio.StreamReader, *, keep: bool) -> None:
        # A child writing into a full pipe would stall; read everything, keep the tail.
        while True:
            line = await stream.readline()
            if not line:
                return
            if keep:
                self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())
                del self._stderr_tail[:-50]

    async def stop(self) -> None:
        """SIGTERM (a clean server shutdown), then SIGKILL if it has not exited within a few seconds. Idempotent."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 8.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in self._drains:
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)
        self._drains.clear()

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
