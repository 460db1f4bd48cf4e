"""An agent publishing while its subscription is negotiated has its track forwarded, every time.

The client is the official livekit 1.1.x of the agents environment, joined as
livekit-agents joins (two PeerConnections); see agent_like_client.py. Each join
happens in a fresh room with a camera already publishing, so the server's
subscriber offer and the agent's publisher offer meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kitewire.server import Server
from kitewire.signal import create_token
from livekit import rtc

pytestmark = [pytest.mark.timeout(300)]

CLIENT = Path(__file__).with_name("agent_like_client.py")
JOINS = 10


async def wait_for(condition: Callable[[], object], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def agent_counts(server: Server, room: str) -> tuple[int, int, int]:
    """(tracks the agent published, packets the server received on them, packets sent to subscribers)."""
    known = server.rooms.rooms.get(room)
    agent = known.participants.get("agent") if known is not None else None
    if agent is None:
        return 0, 0, 0
    tracks = list(agent.published.values())
    received = sum(t.packets_received for t in tracks)
    sent = sum(d.packets_sent for t in tracks for d in t.downtracks.values())
    return len(tracks), received, sent


def forwarding(server: Server, room: str) -> bool:
    return agent_counts(server, room)[2] > 0


@contextlib.asynccontextmanager
async def camera_in(server: Server, room: str) -> AsyncIterator[None]:
    """An official-SDK (the suite's livekit) participant publishing a small camera in ``room``."""
    joined = rtc.Room()
    token = create_token("devkey", "secret", identity="camera", room=room)
    await asyncio.wait_for(joined.connect(server.url, token), 20)
    source = rtc.VideoSource(320, 240)
    frame = rtc.VideoFrame(320, 240, rtc.VideoBufferType.RGBA, bytes(320 * 240 * 4))

    async def feed() -> None:
        while True:
            source.capture_frame(frame)
            await asyncio.sleep(1 / 15)

    feeding = asyncio.get_running_loop().create_task(feed())
    try:
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False)
        await asyncio.wait_for(joined.local_participant.publish_track(track, options), 20)
        yield
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        await asyncio.wait_for(joined.disconnect(), 10)


async def read_line(process: asyncio.subprocess.Process, timeout: float) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    return line.decode().strip()


@pytest.mark.parametrize("moment", ["subscribed", "first-frame"])
async def test_an_agent_publishing_during_its_subscription_is_forwarded_every_time(
    server: Server, agents_python: Path, moment: str
) -> None:
    """The agent publishes as its subscription is reported, or when the first frame of it is decoded."""
    process = await asyncio.create_subprocess_exec(
        str(agents_python),
        str(CLIENT),
        server.url,
        moment,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=sys.stderr,
    )
    assert process.stdin is not None
    results: list[tuple[int, int, int]] = []
    try:
        for join in range(JOINS):
            room = f"race-{join}"
            async with camera_in(server, room):
                token = create_token("devkey", "secret", identity="agent", room=room)
                process.stdin.write(token.encode() + b"\n")
                published = await read_line(process, 60)
                assert published.startswith("published "), published
                await wait_for(functools.partial(forwarding, server, room), 10)
                results.append(agent_counts(server, room))
                process.stdin.write(b"next\n")
                assert await read_line(process, 30) == "left"
        # every join: the agent's one track bound, its packets received and forwarded to the camera's owner
        assert [(tracks, received > 0, sent > 0) for tracks, received, sent in results] == [(1, True, True)] * JOINS, (
            results
        )
    finally:
        with contextlib.suppress(Exception):
            process.stdin.write(b"\n")
            process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
            await process.wait()
