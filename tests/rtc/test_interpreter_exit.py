"""A program that never disconnects its Room exits cleanly: asyncio.run() ending closes
the room, and nothing is printed about unclosed sessions, pending tasks or closed loops."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import kitewire
from kitewire.server import Server

# publishes, subscribes, streams frames, then returns from main() with the rooms open
PROGRAM = """
import asyncio, sys
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

async def main() -> None:
    url = sys.argv[1]
    publisher, viewer = rtc.Room(), rtc.Room()
    subscribed = asyncio.get_running_loop().create_future()
    viewer.on("track_subscribed", lambda track, *_: subscribed.done() or subscribed.set_result(track))
    await viewer.connect(url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="viewer", room="exit"))
    await publisher.connect(url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="publisher", room="exit"))
    source = rtc.VideoSource(320, 240)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    await publisher.local_participant.publish_track(track, rtc.TrackPublishOptions())

    async def capture() -> None:
        for index in range(100_000):
            source.capture_frame(make_pattern_frame(index, 320, 240))
            await asyncio.sleep(1 / 30)

    capturing = asyncio.get_running_loop().create_task(capture())
    stream = rtc.VideoStream(await asyncio.wait_for(subscribed, 20))
    frames = 0
    async for _ in stream:
        frames += 1
        if frames == 5:
            break
    print("frames", frames, flush=True)
    # no disconnect(), no aclose(), the capture task still running: main() just returns

asyncio.run(main())
print("exited", flush=True)
"""

NOISE = (
    "Unclosed client session",
    "Unclosed connector",
    "Event loop is closed",
    "Task was destroyed but it is pending",
    "Exception ignored",
    "Traceback",
    "ResourceWarning",
)


async def test_a_room_never_disconnected_exits_without_noise(server: Server) -> None:
    root = Path(kitewire.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",
        "-c",
        PROGRAM,
        server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 0, err
    assert "frames 5" in out and "exited" in out, (out, err)
    assert [noise for noise in NOISE if noise in err] == [], err
