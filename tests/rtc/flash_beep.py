"""A clip with a flash on screen at each beep, played through AVSynchronizer, and the measure of
when each flash and each beep reached a subscriber (shared by the A/V sync test and the examples'
receiver checks)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kitewire import rtc

FPS = 30
WIDTH, HEIGHT = 320, 240
RATE = 48_000
BEEP_EVERY = 1.0
BEEP_LENGTH = 0.2
AUDIO_FRAME = 0.01


def _frame(bright: bool) -> rtc.VideoFrame:
    luma = np.full(WIDTH * HEIGHT, 235 if bright else 16, dtype=np.uint8)
    chroma = np.full(WIDTH * HEIGHT // 2, 128, dtype=np.uint8)
    return rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.I420, bytearray(luma.tobytes() + chroma.tobytes()))


def beeping(t: float) -> bool:
    return (t % BEEP_EVERY) < BEEP_LENGTH and t >= BEEP_EVERY


async def play_clip(sync: rtc.AVSynchronizer, seconds: float) -> None:
    """Push ``seconds`` of the clip in media order: each video frame, then the audio up to the next."""
    dark, bright = _frame(False), _frame(True)
    per_frame = int(RATE * AUDIO_FRAME)
    audio_at = 0
    t_index = np.arange(per_frame)
    for index in range(int(seconds * FPS)):
        t = index / FPS
        await sync.push(bright if beeping(t) else dark)
        while audio_at < (index + 1) * RATE / FPS:
            start = audio_at / RATE
            tone = np.sin(2 * np.pi * 1000 * (audio_at + t_index) / RATE) * 12000
            loud = np.array([beeping(start + i / RATE) for i in range(0, per_frame, 48)]).repeat(48)[:per_frame]
            samples = (tone * loud).astype(np.int16)
            await sync.push(rtc.AudioFrame(bytearray(samples.tobytes()), RATE, 1, per_frame))
            audio_at += per_frame


@dataclass
class Onsets:
    """Arrival times (monotonic seconds) of each flash's first bright frame and each beep's first loud sample."""

    flashes: list[float] = field(default_factory=list)
    beeps: list[float] = field(default_factory=list)
    _bright: bool = False
    _loud_until: float = 0.0

    def video(self, frame: Any) -> None:
        now = time.monotonic()
        width, height = frame.width, frame.height
        luma = np.frombuffer(bytes(frame.data), dtype=np.uint8)[: width * height]
        bright = float(luma.mean()) > 128
        if bright and not self._bright:
            self.flashes.append(now)
        self._bright = bright

    def audio(self, frame: Any) -> None:
        now = time.monotonic()
        samples = np.frombuffer(bytes(frame.data.cast("B")), dtype=np.int16).reshape(-1, frame.num_channels)[:, 0]
        loud = np.nonzero(np.abs(samples.astype(np.int32)) > 4000)[0]
        if not len(loud):
            return
        # the frame's last sample arrived now; an earlier one arrived that much sooner
        onset = now - (len(samples) - int(loud[0])) / frame.sample_rate
        if onset > self._loud_until:
            self.beeps.append(onset)
        self._loud_until = now + (BEEP_EVERY - BEEP_LENGTH) / 2

    def offsets(self) -> list[float]:
        """For each flash, its arrival minus that of the nearest beep (seconds; + means video late)."""
        out = []
        for flash in self.flashes:
            if self.beeps:
                nearest = min(self.beeps, key=lambda beep: abs(beep - flash))
                if abs(nearest - flash) < BEEP_EVERY / 2:
                    out.append(flash - nearest)
        return out


def write_clip(path: str, seconds: float) -> None:
    """The clip as an MP4 file (H.264 pictures, AAC sound): a flash on screen at each beep."""
    import av

    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        for index in range(int(seconds * FPS)):
            level = 235 if beeping(index / FPS) else 16
            picture = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), level, dtype=np.uint8), format="rgb24")
            picture.pts = index
            for packet in video.encode(picture.reformat(format="yuv420p")):
                container.mux(packet)
        total = int(seconds * RATE)
        t = np.arange(total) / RATE
        gate = np.array([beeping(x) for x in t[::48]]).repeat(48)[:total]
        sound = (np.sin(2 * np.pi * 1000 * t) * 0.4 * gate).astype(np.float32)
        step = 1024
        for start in range(0, total - step + 1, step):
            frame = av.AudioFrame.from_ndarray(sound[None, start : start + step], format="fltp", layout="mono")
            frame.sample_rate = RATE
            frame.pts = start
            for packet in audio.encode(frame):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)


async def publish_clip(url: str, token: str, seconds: float) -> None:
    """Join, publish a camera and a microphone track and play the clip through AVSynchronizer."""
    room = rtc.Room()
    await room.connect(url, token)
    try:
        audio_source = rtc.AudioSource(RATE, 1)
        video_source = rtc.VideoSource(WIDTH, HEIGHT)
        await room.local_participant.publish_track(
            rtc.LocalVideoTrack.create_video_track("screen", video_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False),
        )
        await room.local_participant.publish_track(
            rtc.LocalAudioTrack.create_audio_track("sound", audio_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
        )
        print("published", flush=True)
        # the subscribers open their streams once they see both tracks
        await asyncio.sleep(1.0)
        sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)
        await play_clip(sync, seconds)
        await sync.wait_for_playout()
        await sync.aclose()
    finally:
        await room.disconnect()


if __name__ == "__main__":
    # a publisher in a process of its own: python flash_beep.py URL TOKEN SECONDS
    asyncio.run(publish_clip(sys.argv[1], sys.argv[2], float(sys.argv[3])))
