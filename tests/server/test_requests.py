"""requests.py: what signal requests do, seen from a raw signal client."""

from __future__ import annotations

import logging

import pytest
from kitewire.server import Server
from kitewire.signal import connect, create_token
from livekit.protocol import rtc as pb_rtc

pytestmark = pytest.mark.timeout(60)


async def test_unusable_candidates_are_logged_once_per_session(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "kitewire.server")
    client, _ = await connect(
        server.url, create_token("devkey", "secret", identity="noisy", room="r"), legacy=True, keepalive=False
    )
    try:
        for index in range(20):
            candidate = "{{{" if index % 2 else "c" * 4096
            trickle = pb_rtc.TrickleRequest(candidateInit=candidate, target=pb_rtc.SignalTarget.SUBSCRIBER)
            await client.connection.send(pb_rtc.SignalRequest(trickle=trickle))
        await client.connection.send(pb_rtc.SignalRequest(ping=7))
        while True:
            message = await client.connection.receive(timeout=5)
            assert message is not None, "the server dropped a client for unusable candidates"
            if message.WhichOneof("message") == "pong":
                break
    finally:
        await client.close()
    lines = [r.getMessage() for r in caplog.records if "candidate" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "event=candidate_ignored" in lines[0] and "identity=noisy" in lines[0] and "4096" in lines[0]
