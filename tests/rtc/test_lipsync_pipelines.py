"""Lip sync in the receiving engine, on real pipelines over two loopback PeerConnections (no
server): with the audio 120 ms late on the way, pictures sharing its StreamSync leave as late as
the audio does, by the sender reports' clocks; without it, or with nobody listening, they run ahead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest
from kitewire.engine import AudioPublishPipeline, AudioReceivePipeline, VideoPublishPipeline, VideoReceivePipeline
from kitewire.engine.lipsync import StreamSync
from kitewire.frames import VideoFrame
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.media import plan_video_layers
from kitewire.transport import PeerConnection, PeerConnectionConfig, RtpHeader

from audio_signal import sine

AUDIO_DELAY = 0.12
SECONDS = 4.0
BEEP_EVERY = 0.5


def _delayed(deliver: Callable[[bytes, RtpHeader], None], delay: float) -> Callable[[bytes, RtpHeader], None]:
    """``deliver`` each packet ``delay`` seconds after it arrived (a longer path for one track)."""
    loop = asyncio.get_running_loop()

    def later(packet: bytes, header: RtpHeader) -> None:
        loop.call_later(delay, deliver, packet, header)

    return later


async def _lateness(synced: bool, listening: bool = True) -> tuple[float, float, int]:
    """(median audio lateness, median picture lateness, pictures held) behind capture, seconds."""
    sender_pc = PeerConnection(PeerConnectionConfig(loopback_only=True, rtcp_report_interval=0.25))
    receiver_pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    audio_tx = sender_pc.add_transceiver("audio", "sendonly", stream_id="clip", track_id="sound")
    video_tx = sender_pc.add_transceiver("video", "sendonly", stream_id="clip", track_id="picture")
    await receiver_pc.set_remote_description(await sender_pc.create_offer(), "offer")
    await sender_pc.set_remote_description(await receiver_pc.create_answer(), "answer")
    await asyncio.gather(sender_pc.wait_connected(10), receiver_pc.wait_connected(10))
    audio_rx, video_rx = (t.receiver for t in receiver_pc.transceivers)
    sound = AudioPublishPipeline(audio_tx.sender, num_channels=1)
    picture = VideoPublishPipeline(
        video_tx.sender, codec="VP8", layers=plan_video_layers(320, 240, simulcast=False), simulcast=False
    )
    await picture.warm_up()
    heard, seen = AudioReceivePipeline(audio_rx), VideoReceivePipeline(video_rx)
    sync = StreamSync()
    if synced:
        heard.lip_sync = seen.lip_sync = sync
    if not listening:
        heard.has_consumers = lambda: False
    assert audio_rx.on_rtp is not None
    audio_rx.on_rtp = _delayed(audio_rx.on_rtp, AUDIO_DELAY)
    audio_late: list[float] = []
    video_late: list[float] = []
    loud_before = False

    def on_audio(pcm: bytes, rate: int, channels: int, samples: int, timestamp_us: int) -> None:
        # a beep starts every BEEP_EVERY s: its first loud sample was heard now minus what follows it
        nonlocal loud_before
        left = np.frombuffer(pcm, dtype=np.int16)[::channels]
        loud = np.nonzero(np.abs(left.astype(np.int32)) > 3000)[0]
        if len(loud) and not loud_before:
            heard_at = time.time() - (samples - int(loud[0])) / rate
            captured = start_wall + round((heard_at - start_wall) / BEEP_EVERY) * BEEP_EVERY
            audio_late.append(heard_at - captured)
        loud_before = bool(len(loud)) and bool(np.abs(left[-48:].astype(np.int32)).max() > 3000)

    def on_frame(frame: VideoFrame, timestamp_us: int, rotation: int, metadata: object = None) -> None:
        counter = read_frame_counter(frame)
        if counter is not None:
            video_late.append(time.time() - (start_wall + counter * 0.01))

    heard.on_audio = on_audio
    seen.on_frame = on_frame
    beeping = np.arange(int(SECONDS * 48_000)) % int(BEEP_EVERY * 48_000) < 4800
    tone = (sine(440, SECONDS) * beeping).astype(np.int16)
    frames = [make_pattern_frame(index, 320, 240) for index in range(0, int(SECONDS * 100), 3)]
    start, start_wall = time.monotonic(), time.time()
    try:
        for index in range(int(SECONDS * 100)):  # 10 ms of audio a step, a picture every third
            stamp = int((start_wall + index * 0.01) * 1_000_000)
            sound.on_audio(tone[index * 480 : (index + 1) * 480].tobytes(), 48_000, 1, 480, stamp)
            if index % 3 == 0:
                picture.on_frame(frames[index // 3], time.time_ns() // 1000, 0)
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.01 - time.monotonic()))
        await asyncio.sleep(0.5)
    finally:
        for pipeline in (sound, picture, heard, seen):
            await pipeline.close()
        await sender_pc.close()
        await receiver_pc.close()
    # from the second second: the first sender reports have arrived
    audio_late, video_late = audio_late[len(audio_late) // 3 :], video_late[len(video_late) // 3 :]
    assert len(audio_late) >= 4 and len(video_late) > 30, (audio_late, len(video_late))
    print(
        f"synced={synced}: audio {np.median(audio_late) * 1000:.0f} ms, pictures {np.median(video_late) * 1000:.0f} ms late"
    )
    return float(np.median(audio_late)), float(np.median(video_late)), sync.pictures_held


async def test_pictures_are_held_to_their_audio_only_when_they_share_its_stream_sync() -> None:
    audio, video, held = await _lateness(synced=False)
    assert held == 0
    assert video < audio - 0.08, (audio, video)  # the pictures run ahead of the delayed audio
    audio, video, held = await _lateness(synced=True)
    assert held > 0
    assert video == pytest.approx(audio, abs=0.03), (audio, video)
    # audio nobody listens to holds no picture back
    audio, video, held = await _lateness(synced=True, listening=False)
    assert held == 0 and video < audio - 0.08, (audio, video)
