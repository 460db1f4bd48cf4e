"""Publish a generated, moving color pattern as a camera track.

Written against ``kitewire.rtc`` exactly as a livekit.rtc program would be; with
livekit installed, ``from livekit import rtc`` works the same.

    kitewire serve --dev &
    python examples/publish_pattern.py --url ws://127.0.0.1:7880 --room demo

The token is minted from --api-key/--api-secret (the --dev defaults), or taken
from --token / LIVEKIT_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

import numpy as np
from kitewire import rtc
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

WIDTH, HEIGHT, FPS = 1280, 720, 30


class ColorPattern:
    """RGBA frames: diagonal rainbow bands sliding sideways."""

    PERIOD = 512

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        # one period of a smooth RGB cycle, looked up per pixel: cheaper than trig per frame
        phases = np.linspace(0.0, 2.0 * np.pi, self.PERIOD, endpoint=False, dtype=np.float32)
        offsets = np.array([0.0, 2.0 * np.pi / 3, 4.0 * np.pi / 3], dtype=np.float32)
        palette = (0.5 + 0.5 * np.sin(phases[:, None] + offsets[None, :])) * 255
        self._palette = np.concatenate([palette.astype(np.uint8), np.full((self.PERIOD, 1), 255, np.uint8)], axis=1)
        rows = np.arange(height, dtype=np.int32)[:, None]
        columns = np.arange(width, dtype=np.int32)[None, :]
        self._diagonal = (rows + columns) % self.PERIOD

    def frame(self, index: int) -> rtc.VideoFrame:
        shifted = (self._diagonal + index * 8) % self.PERIOD
        rgba = self._palette[shifted]  # (height, width, 4)
        return rtc.VideoFrame.from_ndarray(rgba, rtc.VideoBufferType.RGBA)


async def main(args: argparse.Namespace) -> None:
    token = (
        args.token
        or os.environ.get("LIVEKIT_TOKEN")
        or create_token(args.api_key, args.api_secret, identity=args.identity, room=args.room)
    )
    room = rtc.Room()

    @room.on("participant_connected")
    def on_participant_connected(participant: rtc.RemoteParticipant) -> None:
        logging.info("participant connected: %s", participant.identity)

    await room.connect(args.url, token)
    logging.info("connected to room %s as %s", room.name, room.local_participant.identity)

    source = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("color-pattern", source)
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA,
        simulcast=args.simulcast,
        video_encoding=rtc.VideoEncoding(max_bitrate=2_000_000, max_framerate=FPS),
    )
    publication = await room.local_participant.publish_track(track, options)
    logging.info("published track %s", publication.sid)

    pattern = ColorPattern(WIDTH, HEIGHT)
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    index = 0
    try:
        while args.seconds <= 0 or time.monotonic() - start < args.seconds:
            # drawing costs a few ms of numpy; keep it off the event loop
            frame = await loop.run_in_executor(None, pattern.frame, index)
            source.capture_frame(frame)
            index += 1
            await asyncio.sleep(max(0.0, start + index / FPS - time.monotonic()))
    finally:
        logging.info("published %d frames", index)
        await room.disconnect()
        await source.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"))
    parser.add_argument("--room", default="demo")
    parser.add_argument("--identity", default="pattern-publisher")
    parser.add_argument("--token", default=None)
    parser.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY", DEV_API_KEY))
    parser.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET", DEV_API_SECRET))
    parser.add_argument("--simulcast", action="store_true", help="publish q/h/f layers")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = run until Ctrl-C)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        pass
