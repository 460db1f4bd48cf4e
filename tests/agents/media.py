"""Media for the agent tests: a kitewire.rtc participant publishing a moving 640x480@30 camera."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import numpy as np
from kitewire import rtc
from kitewire.server import Server
from kitewire.signal import create_token

WIDTH, HEIGHT, FPS = 640, 480, 30


class MovingPattern:
    """Publishes 640x480 RGBA frames at 30 fps whose bands move, so every frame differs."""

    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self.source = rtc.VideoSource(WIDTH, HEIGHT)
        ramp = (np.arange(WIDTH + 2 * FPS * 8, dtype=np.int32) * 3 % 256).astype(np.uint8)
        self._ramp = ramp
        self.sent = 0
        self.track: rtc.LocalVideoTrack | None = None
        self._task: asyncio.Task[None] | None = None

    def _frame(self, index: int) -> rtc.VideoFrame:
        shift = (index % (2 * FPS)) * 8
        row = self._ramp[shift : shift + WIDTH]
        rgba = np.empty((HEIGHT, WIDTH, 4), dtype=np.uint8)
        rgba[..., 0] = row
        rgba[..., 1] = row[::-1]
        rgba[..., 2] = 128
        rgba[..., 3] = 255
        return rtc.VideoFrame.from_ndarray(rgba, rtc.VideoBufferType.RGBA)

    async def start(self) -> None:
        track = self.track = rtc.LocalVideoTrack.create_video_track("camera", self.source)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            # one 640x480 encoding: three simulcast layers cost the publisher frames on a busy machine
            simulcast=False,
            video_encoding=rtc.VideoEncoding(max_bitrate=1_500_000, max_framerate=FPS),
        )
        await asyncio.wait_for(self.room.local_participant.publish_track(track, options), 20)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        frames = [self._frame(index) for index in range(2 * FPS)]
        start = time.monotonic()
        while True:
            self.source.capture_frame(frames[self.sent % len(frames)])
            self.sent += 1
            await asyncio.sleep(max(0.0, start + self.sent / FPS - time.monotonic()))

    async def frames_on_the_wire(self) -> int:
        """Frames the publisher encoded and sent (fewer than captured when its encoder cannot keep up)."""
        if self.track is None:
            return 0
        stats = await self.track.get_stats()
        return sum(s.outbound_rtp.outbound.frames_sent for s in stats if s.outbound_rtp is not None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def kitewire_room(server: Server, identity: str, room: str, token: str = "") -> AsyncIterator[rtc.Room]:
    joined = rtc.Room()
    await asyncio.wait_for(
        joined.connect(server.url, token or create_token("devkey", "secret", identity=identity, room=room)), 20
    )
    try:
        yield joined
    finally:
        await asyncio.wait_for(joined.disconnect(), 10)
