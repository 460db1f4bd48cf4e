"""An agent publishing while its subscription is negotiated has its track forwarded, every time.

The client is the official livekit 1.1.x of the agents environment, joined as
livekit-agents joins (two PeerConnections); see agent_like_client.py. Each join
happens in a fresh room with a camera published before or after the agent joins, so
the server's subscriber offer and the agent's publisher offer meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import Callable
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


class Camera:
    """An official-SDK (the suite's livekit) participant in ``room`` that publishes a small camera when asked."""

    def __init__(self, server: Server, room: str) -> None:
        self.server = server
        self.room_name = room
        self.room = rtc.Room()
        self.source = rtc.VideoSource(320, 240)
        self._feeding: asyncio.Task[None] | None = None

    async def join(self) -> None:
        token = create_token("devkey", "secret", identity="camera", room=self.room_name)
        await asyncio.wait_for(self.room.connect(self.server.url, token), 20)

    async def publish(self) -> None:
        self._feeding = asyncio.get_running_loop().create_task(self._feed())
        track = rtc.LocalVideoTrack.create_video_track("camera", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False)
        await asyncio.wait_for(self.room.local_participant.publish_track(track, options), 20)

    async def _feed(self) -> None:
        frame = rtc.VideoFrame(320, 240, rtc.VideoBufferType.RGBA, bytes(320 * 240 * 4))
        while True:
            self.source.capture_frame(frame)
            await asyncio.sleep(1 / 15)

    async def leave(self) -> None:
        if self._feeding is not None:
            self._feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeding
        await asyncio.wait_for(self.room.disconnect(), 10)


async def read_line(process: asyncio.subprocess.Process, timeout: float) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    return line.decode().strip()


@pytest.mark.parametrize("moment", ["together", "subscribed", "first-frame"])
async def test_an_agent_publishing_during_its_subscription_is_forwarded_every_time(
    server: Server, agents_python: Path, moment: str
) -> None:
    """The agent publishes as it subscribes, as its subscription is reported, or at its first decoded frame."""
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
            camera = Camera(server, room)
            await camera.join()
            try:
                # even joins: the camera is there before the agent; odd ones: it comes after
                camera_first = join % 2 == 0
                if camera_first:
                    await camera.publish()
                token = create_token("devkey", "secret", identity="agent", room=room)
                process.stdin.write(token.encode() + b"\n")
                assert await read_line(process, 60) == "joined"
                if not camera_first:
                    await camera.publish()
                published = await read_line(process, 60)
                assert published.startswith("published "), published
                await wait_for(functools.partial(forwarding, server, room), 10)
                results.append(agent_counts(server, room))
                process.stdin.write(b"next\n")
                assert await read_line(process, 30) == "left"
            finally:
                await camera.leave()
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
