"""Testing agents: run a livekit-agents worker script against an in-process kitewire server.

A user's agent test is a few lines::

    from kitewire.server import Server, ServerConfig
    from kitewire.server.agents.testing import run_agent_worker

    async def test_my_agent():
        async with Server(ServerConfig.dev(port=0)) as server:
            async with run_agent_worker(server, "my_agent.py") as worker:
                ...  # join a room with kitewire.rtc or livekit.rtc; the agent is dispatched to it

The worker runs as a child process (``python my_agent.py dev`` with
``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` pointing at the
server) in its own process group, so leaving the block ends it and every job
process it started. ``python`` may name another environment's interpreter
(livekit-agents pins its own livekit version).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import Server
    from .dispatcher import Dispatcher

__all__ = ["AgentWorkerProcess", "run_agent_worker"]

# livekit-agents imports a lot and starts a process pool before registering: generous on a busy machine.
DEFAULT_READY_TIMEOUT_SECONDS = 90.0
# After SIGTERM a worker drains (in dev mode it just closes); then it is killed.
STOP_TIMEOUT_SECONDS = 15.0


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook making the worker get SIGKILL when the process that started it dies.

    Without it a test run killed from outside would leave the worker running. The
    libc function is looked up here, before any fork, so the hook only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return hook


_die_with_parent = _parent_death_signal()


class AgentWorkerProcess:
    """A running worker script: its process, the worker id it registered with, and its output."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.worker_id = ""

    def output(self) -> str:
        """Everything the worker printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its job processes at once (a crash, as far as the server can tell)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM, wait up to STOP_TIMEOUT_SECONDS, then SIGKILL the whole process group."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)
        # job processes may outlive their worker: the group goes in any case
        self.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)


@contextlib.asynccontextmanager
async def run_agent_worker(
    server: Server,
    script: str | os.PathLike[str],
    *,
    python: str | os.PathLike[str] = sys.executable,
    command: str = "dev",
    agent_name: str = "",
    env: Mapping[str, str] | None = None,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_SECONDS,
) -> AsyncIterator[AgentWorkerProcess]:
    """Start ``python script command`` as a worker of ``server`` (a started ``kitewire.server.Server``).

    Yields once the worker has registered on ``/agent``; raises RuntimeError
    with the worker's output when it exits or does not register within
    ``ready_timeout`` seconds. The output file (``log_path``) is removed when the
    block ends normally and kept when it raised. ``agent_name`` sets ``LIVEKIT_AGENT_NAME``
    (named agents are dispatched explicitly only).
    """
    dispatcher = server.agents.dispatcher
    api_key, api_secret = next(iter(server.config.keys.items()))
    child_env = dict(os.environ)
    child_env.update({"LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": api_key, "LIVEKIT_API_SECRET": api_secret})
    if agent_name:
        child_env["LIVEKIT_AGENT_NAME"] = agent_name
    child_env.update(env or {})
    script_path = Path(script).resolve()
    # the worker starts in the script's folder: a relative interpreter path is taken from here first
    interpreter = os.path.abspath(python) if os.sep in str(python) else str(python)
    log_fd, log_name = tempfile.mkstemp(prefix="kitewire-agent-worker-", suffix=".log")
    before = set(dispatcher.workers)
    try:
        process = await asyncio.create_subprocess_exec(
            interpreter,
            str(script_path),
            command,
            cwd=str(script_path.parent),
            env=child_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(log_fd)
    worker = AgentWorkerProcess(process, Path(log_name))
    failed = True
    try:
        worker.worker_id = await _registered(dispatcher, before, agent_name, worker, ready_timeout)
        yield worker
        failed = False
    finally:
        await worker.stop()
        if not failed:
            # the output of a worker whose block failed stays, for a look at what it said
            worker.log_path.unlink(missing_ok=True)


async def _registered(
    dispatcher: Dispatcher, before: set[str], agent_name: str, worker: AgentWorkerProcess, timeout: float
) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for worker_id, registered in dispatcher.workers.items():
            if worker_id not in before and registered.agent_name == agent_name:
                return worker_id
        if worker.process.returncode is not None:
            raise RuntimeError(
                f"agent worker exited with code {worker.process.returncode} before registering:\n"
                f"{worker.output()[-4000:]}"
            )
        await asyncio.sleep(0.1)
    raise RuntimeError(f"agent worker did not register within {timeout:g} s:\n{worker.output()[-4000:]}")
