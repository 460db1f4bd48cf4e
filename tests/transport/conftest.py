"""Fixtures for transport tests: connected pairs of our PeerConnection and
loopback-only aiortc peers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiortc.rtcicetransport
import pytest
from kitewire.transport import PeerConnection, PeerConnectionConfig
from kitewire.transport.aiortc_seam import _LoopbackConnection


@pytest.fixture
def aiortc_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make aiortc's own RTCPeerConnection gather only 127.0.0.1 (test-scoped patch)."""
    monkeypatch.setattr(aiortc.rtcicetransport, "Connection", _LoopbackConnection)
    yield


@pytest.fixture
async def make_pc() -> AsyncIterator[Callable[..., PeerConnection]]:
    """Factory for loopback PeerConnections that are all closed after the test."""
    created: list[PeerConnection] = []

    def factory(**kwargs: Any) -> PeerConnection:
        pc = PeerConnection(PeerConnectionConfig(loopback_only=True, **kwargs))
        created.append(pc)
        return pc

    yield factory
    for pc in created:
        await pc.close()
