"""Fixtures for the engine's tests: an embedded kitewire server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kitewire.server import Server

from server.embedded import embedded_server  # tests/server, shared with other suites


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with embedded_server() as running:
        yield running
