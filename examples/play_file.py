"""Publish a media file (video and sound) in sync, as livekit's AVSynchronizer examples do.

PyAV demuxes and decodes the file; pictures go to a VideoSource and sound to an
AudioSource, both through an AVSynchronizer so that what subscribers see matches
what they hear. Written against ``kitewire.rtc`` exactly as a livekit.rtc program
would be (``from livekit import rtc`` works the same).

    kitewire serve --dev &
    python examples/play_file.py --url ws://127.0.0.1:7880 --room demo --file clip.mp4

The token is minted from --api-key/--api-secret (the --dev defaults), or taken
from --token / LIVEKIT_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import av
from kitewire import rtc
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

AUDIO_RATE = 48_000


def _audio_frames(resampler: av.AudioResampler, frame: av.AudioFrame | None, channels: int) -> list[rtc.AudioFrame]:
    out = []
    for piece in resampler.resample(frame):
        data = piece.to_ndarray().tobytes()  # s16 packed: interleaved int16
        out.append(rtc.AudioFrame(data, AUDIO_RATE, channels, piece.samples))
    return out


async def play(args: argparse.Namespace, room: rtc.Room) -> None:
    container = av.open(args.file)
    video_stream = container.streams.video[0] if container.streams.video else None
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    if video_stream is None or audio_stream is None:
        raise SystemExit(f"{args.file}: expected a video and an audio stream")
    width, height = video_stream.codec_context.width, video_stream.codec_context.height
    fps = float(video_stream.average_rate or 30)
    channels = 2 if (audio_stream.codec_context.channels or 1) >= 2 else 1
    video_source = rtc.VideoSource(width, height)
    audio_source = rtc.AudioSource(AUDIO_RATE, channels, queue_size_ms=args.audio_queue_ms)
    await room.local_participant.publish_track(
        rtc.LocalVideoTrack.create_video_track("video", video_source),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA),
    )
    await room.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("audio", audio_source),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
    )
    sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=fps)
    resampler = av.AudioResampler(format="s16", layout="stereo" if channels == 2 else "mono", rate=AUDIO_RATE)
    logging.info("playing %s: %dx%d at %.2f fps, %d audio channels", args.file, width, height, fps, channels)
    try:
        # decode() yields the streams' frames interleaved in file order: media order for the synchronizer
        for frame in container.decode(video_stream, audio_stream):
            if isinstance(frame, av.VideoFrame):
                # I420 planes back to back, as rtc.VideoFrame takes them
                i420 = frame.reformat(format="yuv420p").to_ndarray()
                await sync.push(rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, i420.tobytes()))
            elif isinstance(frame, av.AudioFrame):
                for piece in _audio_frames(resampler, frame, channels):
                    await sync.push(piece)
        for piece in _audio_frames(resampler, None, channels):
            await sync.push(piece)
        await sync.wait_for_playout()
    finally:
        await sync.aclose()
        container.close()


async def main(args: argparse.Namespace) -> None:
    token = (
        args.token
        or os.environ.get("LIVEKIT_TOKEN")
        or create_token(args.api_key, args.api_secret, identity=args.identity, room=args.room)
    )
    room = rtc.Room()
    await room.connect(args.url, token)
    logging.info("connected to room %s", room.name)
    try:
        await play(args, room)
    finally:
        await room.disconnect()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"))
    parser.add_argument("--room", default="demo")
    parser.add_argument("--identity", default="file-player")
    parser.add_argument("--file", required=True, help="a media file with video and sound (MP4, MKV, WebM, ...)")
    parser.add_argument("--audio-queue-ms", type=int, default=200)
    parser.add_argument("--token", default=None)
    parser.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY", DEV_API_KEY))
    parser.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET", DEV_API_SECRET))
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(main(parse_args()))
