"""Receive what a room's participants send and write it down: their sound to a WAV file and
one picture every --png-every seconds to PNG files.

Written against ``kitewire.rtc`` exactly as a livekit.rtc program would be; PyAV
encodes the PNGs.

    python examples/record_av.py --url ws://127.0.0.1:7880 --room demo --out recording --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import wave
from pathlib import Path

import av
import numpy as np
from kitewire import rtc
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

RATE = 48_000


def write_png(frame: rtc.VideoFrame, path: Path) -> None:
    rgb = frame.convert(rtc.VideoBufferType.RGB24)
    array = np.frombuffer(bytes(rgb.data), dtype=np.uint8).reshape(rgb.height, rgb.width, 3)
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = rgb.width, rgb.height, "rgb24"
    packets = encoder.encode(av.VideoFrame.from_ndarray(array, format="rgb24"))
    path.write_bytes(b"".join(bytes(packet) for packet in packets))


async def record_audio(track: rtc.Track, wav: wave.Wave_write) -> None:
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
    async for event in stream:
        wav.writeframes(bytes(event.frame.data.cast("B")))


async def record_video(track: rtc.Track, out: Path, every: float) -> None:
    stream = rtc.VideoStream(track, capacity=1)
    next_at = 0.0
    index = 0
    loop = asyncio.get_running_loop()
    async for event in stream:
        if loop.time() >= next_at:
            await loop.run_in_executor(None, write_png, event.frame, out / f"frame-{index:04d}.png")
            index += 1
            next_at = loop.time() + every


async def main(args: argparse.Namespace) -> None:
    token = (
        args.token
        or os.environ.get("LIVEKIT_TOKEN")
        or create_token(args.api_key, args.api_secret, identity=args.identity, room=args.room)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks: list[asyncio.Task[None]] = []
    room = rtc.Room()
    with wave.open(str(out / "audio.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)

        @room.on("track_subscribed")
        def on_track_subscribed(
            track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
        ) -> None:
            logging.info("subscribed to %s of %s", publication.name, participant.identity)
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                tasks.append(asyncio.create_task(record_audio(track, wav)))
            elif track.kind == rtc.TrackKind.KIND_VIDEO:
                tasks.append(asyncio.create_task(record_video(track, out, args.png_every)))

        await room.connect(args.url, token)
        logging.info("connected to room %s", room.name)
        try:
            await asyncio.sleep(args.seconds)
        finally:
            await room.disconnect()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        seconds = wav.getnframes() / RATE
    pictures = len(list(out.glob("frame-*.png")))
    print(f"wrote {out / 'audio.wav'} ({seconds:.1f} s of sound) and {pictures} PNGs")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"))
    parser.add_argument("--room", default="demo")
    parser.add_argument("--identity", default="recorder")
    parser.add_argument("--out", default="recording")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--png-every", type=float, default=1.0)
    parser.add_argument("--token", default=None)
    parser.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY", DEV_API_KEY))
    parser.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET", DEV_API_SECRET))
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(main(parse_args()))
