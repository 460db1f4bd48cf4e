"""The A/V sync clip (a flash on screen at each beep) as an MP4 file, for the examples' file player.
The clip itself, its publishers and the measure of what arrives live in kitewire.bench.av_sync."""

from __future__ import annotations

import numpy as np
from kitewire.bench.av_sync import FPS, HEIGHT, RATE, WIDTH, beeping


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
