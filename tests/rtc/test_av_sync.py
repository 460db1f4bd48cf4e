"""AVSynchronizer through kitewire serve: a clip with a flash at each beep reaches an official and
a kitewire subscriber with the flash and the beep within 40 ms of each other."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np
import pytest
from audio_peers import RoomFactory
from flash_beep import FPS, HEIGHT, RATE, WIDTH, Onsets, play_clip
from kitewire import rtc
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from livekit import rtc as lk

pytestmark = pytest.mark.asyncio

SECONDS = 8.0


async def _watch(video: Any, audio: Any, onsets: Onsets, seconds: float) -> None:
    async def frames() -> None:
        async for event in video:
            onsets.video(event.frame)

    async def samples() -> None:
        async for event in audio:
            onsets.audio(event.frame)

    tasks = [asyncio.create_task(frames()), asyncio.create_task(samples())]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _tracks(room: Any, kinds: int = 2, timeout: float = 15.0) -> dict[int, Any]:
    found: dict[int, Any] = {}
    done = asyncio.Event()

    def on_track(track: Any, *_: object) -> None:
        found[int(track.kind)] = track
        if len(found) >= kinds:
            done.set()

    room.on("track_subscribed", on_track)
    for participant in room.remote_participants.values():
        for publication in participant.track_publications.values():
            if publication.track is not None:
                on_track(publication.track)
    await asyncio.wait_for(done.wait(), timeout)
    return found


async def test_flash_and_beep_arrive_together_at_official_and_kitewire_subscribers(
    connect_room: RoomFactory, server: Server, room_name: str
) -> None:
    publisher = await connect_room("clip")
    kitewire_viewer = await connect_room("kitewire-viewer")
    official_viewer = lk.Room()
    await official_viewer.connect(
        server.url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="official-viewer", room=room_name)
    )
    try:
        audio_source = rtc.AudioSource(RATE, 1)
        video_source = rtc.VideoSource(WIDTH, HEIGHT)
        await publisher.local_participant.publish_track(
            rtc.LocalVideoTrack.create_video_track("screen", video_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False),
        )
        await publisher.local_participant.publish_track(
            rtc.LocalAudioTrack.create_audio_track("sound", audio_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
        )
        ours, theirs = await _tracks(kitewire_viewer), await _tracks(official_viewer)
        video, audio = int(rtc.TrackKind.KIND_VIDEO), int(rtc.TrackKind.KIND_AUDIO)
        our_onsets, their_onsets = Onsets(), Onsets()
        watchers = [
            asyncio.create_task(
                _watch(rtc.VideoStream(ours[video]), rtc.AudioStream(ours[audio]), our_onsets, SECONDS + 2)
            ),
            asyncio.create_task(
                _watch(lk.VideoStream(theirs[video]), lk.AudioStream(theirs[audio]), their_onsets, SECONDS + 2)
            ),
        ]
        sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)
        await play_clip(sync, SECONDS)
        await sync.wait_for_playout()
        await asyncio.gather(*watchers)
        await sync.aclose()
        for who, onsets in (("kitewire", our_onsets), ("official", their_onsets)):
            offsets = onsets.offsets()
            # a beep every second from the first: all but the first and last few arrive as pairs
            assert len(offsets) >= SECONDS - 3, f"{who}: flashes {onsets.flashes}, beeps {onsets.beeps}"
            print(f"{who}: flash minus beep (ms): {[round(o * 1000) for o in offsets]}")
            assert abs(float(np.median(offsets))) <= 0.040, f"{who}: {offsets}"
            assert sum(abs(o) <= 0.040 for o in offsets) >= 0.75 * len(offsets), f"{who}: {offsets}"
    finally:
        await official_viewer.disconnect()
