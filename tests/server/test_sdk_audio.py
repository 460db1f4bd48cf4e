"""Audio is forwarded too (no keyframes to wait for)."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import subscribed_tracks

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
async def test_opus_audio_reaches_subscriber(server: Server, sdk_rooms: Connect, single_pc: bool) -> None:
    bob = await sdk_rooms("bob", options=rtc.RoomOptions(single_peer_connection=single_pc))
    tracks = subscribed_tracks(bob)
    alice = await sdk_rooms("alice")
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    await alice.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )

    async def tone() -> None:
        samples = (np.sin(2 * np.pi * 440 * np.arange(480) / 48000) * 12000).astype(np.int16)
        while True:
            await source.capture_frame(rtc.AudioFrame(samples.tobytes(), 48000, 1, 480))

    tone_task = asyncio.get_running_loop().create_task(tone())
    try:
        remote = await asyncio.wait_for(tracks.get(), 15)
        assert remote.kind == rtc.TrackKind.KIND_AUDIO
        stream = rtc.AudioStream(remote, sample_rate=48000, num_channels=1)
        loud = 0
        frames = 0

        async def read() -> None:
            nonlocal loud, frames
            async for event in stream:
                frames += 1
                pcm = np.frombuffer(event.frame.data, dtype=np.int16)
                if np.abs(pcm).max() > 3000:
                    loud += 1

        reader = asyncio.get_running_loop().create_task(read())
        await asyncio.sleep(3)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await stream.aclose()
        # 10 ms frames: about 300 in 3 s; most carry the tone once the decoder is running.
        assert frames >= 100 and loud >= 50, f"{frames} frames, {loud} with signal"
    finally:
        tone_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tone_task
