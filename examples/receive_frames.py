"""Receive every video track in a room and compute per-frame statistics with numpy.

For each frame: mean brightness and the dominant color channel, from an RGB24
view of the frame (converted off the event loop by VideoStream). Prints one line
per track per second.

    python examples/receive_frames.py --url ws://127.0.0.1:7880 --room demo
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


async def analyse(track: rtc.RemoteVideoTrack, participant: rtc.RemoteParticipant) -> None:
    # capacity=1: a slow analysis step sees the newest frame, never a growing backlog
    stream = rtc.VideoStream(track, capacity=1, format=rtc.VideoBufferType.RGB24)
    frames = 0
    window_start = time.monotonic()
    async for event in stream:
        pixels = event.frame.to_ndarray()  # (height, width, 3), no copy
        channel_means = pixels.reshape(-1, 3).mean(axis=0)
        brightness = float(channel_means.mean())
        dominant = "RGB"[int(np.argmax(channel_means))]
        frames += 1
        now = time.monotonic()
        if now - window_start >= 1.0:
            age_ms = (time.time_ns() // 1000 - event.timestamp_us) / 1000
            print(
                f"{participant.identity}/{track.name}: {frames / (now - window_start):4.1f} fps "
                f"{event.frame.width}x{event.frame.height} brightness {brightness:5.1f} "
                f"dominant {dominant} age {age_ms:5.1f} ms",
                flush=True,
            )
            frames = 0
            window_start = now
    logging.info("stream of %s ended", track.sid)


async def main(args: argparse.Namespace) -> None:
    token = (
        args.token
        or os.environ.get("LIVEKIT_TOKEN")
        or create_token(args.api_key, args.api_secret, identity=args.identity, room=args.room)
    )
    room = rtc.Room()
    tasks: set[asyncio.Task[None]] = set()

    @room.on("track_subscribed")
    def on_track_subscribed(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        logging.info("subscribed to %s from %s", publication.sid, participant.identity)
        if isinstance(track, rtc.RemoteVideoTrack):
            task = asyncio.create_task(analyse(track, participant))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    @room.on("disconnected")
    def on_disconnected(reason: int) -> None:
        logging.info("disconnected: %s", rtc.DisconnectReason.Name(reason))

    await room.connect(args.url, token, rtc.RoomOptions(auto_subscribe=True))
    logging.info("connected to room %s", room.name)
    try:
        if args.seconds > 0:
            await asyncio.sleep(args.seconds)
        else:
            await asyncio.Event().wait()
    finally:
        await room.disconnect()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"))
    parser.add_argument("--room", default="demo")
    parser.add_argument("--identity", default="frame-analyser")
    parser.add_argument("--token", default=None)
    parser.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY", DEV_API_KEY))
    parser.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET", DEV_API_SECRET))
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = run until Ctrl-C)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        pass
