"""Fixtures for the agent tests: an embedded server, hand-driven workers, signal-only participants."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import jwt
import pytest
from kitewire.server import Server
from kitewire.signal import SignalClient

from server.embedded import embedded_server

from .agents_venv import ensure_agents_venv
from .protocol_worker import ProtocolWorker

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # livekit's dev secret "secret" is short on purpose; PyJWT warns on each token.
    if not hasattr(jwt, "InsecureKeyLengthWarning"):
        return
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning"))


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    logging.getLogger("kitewire.server").setLevel(logging.INFO)
    async with embedded_server() as srv:
        yield srv


NewWorker = Callable[..., Awaitable[ProtocolWorker]]


@pytest.fixture
async def workers(server: Server) -> AsyncIterator[NewWorker]:
    """``await new_worker(agent_name="", job_type=JT_ROOM)`` -> a registered ProtocolWorker, closed at the end."""
    opened: list[ProtocolWorker] = []

    async def new_worker(agent_name: str = "", **options: object) -> ProtocolWorker:
        worker = await ProtocolWorker.connect(server.url)
        opened.append(worker)
        await worker.register(agent_name, **options)  # type: ignore[arg-type]
        return worker

    try:
        yield new_worker
    finally:
        for worker in opened:
            await worker.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[SignalClient]]:
    """Signal-only participants a test appends to; all closed at the end."""
    joined: list[SignalClient] = []
    try:
        yield joined
    finally:
        await asyncio.gather(*(client.close() for client in joined), return_exceptions=True)


@pytest.fixture(scope="session")
def agents_python() -> Path:
    """The interpreter of tests/.venvs/agents (livekit-agents and its own livekit), built on first use."""
    try:
        return ensure_agents_venv()
    except RuntimeError as exc:
        pytest.fail(
            f"the livekit-agents environment could not be built (run python tests/agents/agents_venv.py): {exc}"
        )
