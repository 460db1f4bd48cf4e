"""The two example programs run against a kitewire server and see each other."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from kitewire.server import Server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_publish_and_receive_examples(server: Server) -> None:
    common = ["--url", server.url, "--room", "examples"]
    receiver = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "receive_frames.py"),
        *common,
        "--seconds",
        "6",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    publisher = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "publish_pattern.py"),
        *common,
        "--seconds",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        received, receiver_log = await asyncio.wait_for(receiver.communicate(), 60)
        _, publisher_log = await asyncio.wait_for(publisher.communicate(), 60)
    finally:
        for process in (receiver, publisher):
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert publisher.returncode == 0, publisher_log.decode()
    assert receiver.returncode == 0, receiver_log.decode()
    lines = [line for line in received.decode().splitlines() if "pattern-publisher/color-pattern" in line]
    assert lines, receiver_log.decode()
    assert "1280x720" in lines[-1] and "brightness" in lines[-1]
