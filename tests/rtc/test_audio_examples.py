"""The audio examples run against kitewire serve and hear each other: play_file.py publishes an MP4
(a flash at each beep) through AVSynchronizer; record_av.py writes what it hears and sees to a WAV
file and PNGs."""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from flash_beep import write_clip
from kitewire.server import Server

from audio_signal import dominant_frequency

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# the examples import this tree's kitewire, whatever copy is installed
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _as_livekit(example: str, tmp_path: Path) -> Path:
    """``example`` with ``from kitewire import rtc`` changed to ``from livekit import rtc``."""
    source = (EXAMPLES / example).read_text()
    assert "from kitewire import rtc" in source
    copy = tmp_path / f"livekit_{example}"
    copy.write_text(source.replace("from kitewire import rtc", "from livekit import rtc"))
    return copy


# each case runs one kitewire example against one on livekit.rtc: both kitewire examples are
# run, and each is shown to be an upstream-style program
@pytest.mark.parametrize("livekit_side", ["player", "recorder"])
async def test_play_file_and_record_av_examples(server: Server, tmp_path: Path, livekit_side: str | None) -> None:
    """The examples hear each other; each also runs unchanged on livekit.rtc (only its import
    changed), against the same kitewire server."""
    player_path = _as_livekit("play_file.py", tmp_path) if livekit_side == "player" else EXAMPLES / "play_file.py"
    recorder_path = _as_livekit("record_av.py", tmp_path) if livekit_side == "recorder" else EXAMPLES / "record_av.py"
    clip = tmp_path / "clip.mp4"
    await asyncio.get_running_loop().run_in_executor(None, write_clip, str(clip), 6.0)
    out = tmp_path / "recording"
    common = ["--url", server.url, "--room", "audio-examples"]
    recorder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(recorder_path),
        *common,
        "--out",
        str(out),
        "--seconds",
        "10",
        "--png-every",
        "0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    await asyncio.sleep(1.0)
    player = await asyncio.create_subprocess_exec(
        sys.executable,
        str(player_path),
        *common,
        "--file",
        str(clip),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    try:
        printed, recorder_log = await asyncio.wait_for(recorder.communicate(), 60)
        _, player_log = await asyncio.wait_for(player.communicate(), 60)
    finally:
        for process in (recorder, player):
            if process.returncode is None:
                process.kill()
    assert player.returncode == 0, player_log.decode()[-2000:]
    assert recorder.returncode == 0, recorder_log.decode()[-2000:]
    assert b"PNGs" in printed
    with wave.open(str(out / "audio.wav")) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    loud = np.abs(samples.astype(np.int32)) > 4000
    assert loud.any(), "the recording is silent"
    # the beeps are 1 kHz and there are several of them, a second apart
    beep = samples[int(np.nonzero(loud)[0][0]) :][: 48_000 // 10]
    assert abs(dominant_frequency(beep, 48_000) - 1000) < 5
    rising = np.nonzero(np.diff(np.convolve(loud, np.ones(480), "same") > 0).astype(np.int8) == 1)[0]
    assert len(rising) >= 3
    pictures = sorted(out.glob("frame-*.png"))
    assert len(pictures) >= 10
    levels = []
    for picture in pictures:
        with av.open(str(picture)) as image:
            levels.append(float(next(image.decode(video=0)).to_ndarray(format="gray").mean()))
    # dark screens and flashes were both seen
    assert min(levels) < 60 and max(levels) > 180, levels
