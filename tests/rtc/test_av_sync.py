"""AVSynchronizer through kitewire serve: a clip with a flash at each beep reaches a kitewire
subscriber with the flash and the beep within 40 ms of each other, and an official one within
libwebrtc's own lip-sync margin (see the test)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio_peers import RoomFactory
from flash_beep import Onsets
from kitewire import rtc
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from livekit import rtc as lk

pytestmark = pytest.mark.asyncio

SECONDS = 8.0
ROOT = Path(__file__).resolve().parents[2]
# the publisher imports this tree's kitewire, whatever copy is installed
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


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
    kitewire_viewer = await connect_room("kitewire-viewer")
    official_viewer = lk.Room()
    await official_viewer.connect(
        server.url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="official-viewer", room=room_name)
    )
    # the clip plays from a process of its own, as a file player would
    publisher = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("flash_beep.py")),
        server.url,
        create_token(DEV_API_KEY, DEV_API_SECRET, identity="clip", room=room_name),
        str(SECONDS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    try:
        ours, theirs = await _tracks(kitewire_viewer, timeout=30), await _tracks(official_viewer, timeout=30)
        video, audio = int(rtc.TrackKind.KIND_VIDEO), int(rtc.TrackKind.KIND_AUDIO)
        our_onsets, their_onsets = Onsets(), Onsets()
        watchers = [
            asyncio.create_task(
                _watch(rtc.VideoStream(ours[video]), rtc.AudioStream(ours[audio]), our_onsets, SECONDS + 3)
            ),
            asyncio.create_task(
                _watch(lk.VideoStream(theirs[video]), lk.AudioStream(theirs[audio]), their_onsets, SECONDS + 3)
            ),
        ]
        await asyncio.gather(*watchers)
        _, log = await asyncio.wait_for(publisher.communicate(), 30)
        assert publisher.returncode == 0, log.decode()[-2000:]
        # The server puts the clip's camera and microphone in one media stream (one a=msid) with
        # sender reports on the publisher's capture clock, so libwebrtc lip-syncs them (shown by
        # skewing the publisher's audio clock: the official subscriber then moves its video).
        # But libwebrtc leaves a difference under 30 ms alone (StreamSynchronization's
        # kMinDeltaMs) and closes a larger one a step a second: its NetEq holds audio 25-35 ms
        # longer than its video buffer holds pictures, so the official median sat at -24 to -36 ms
        # and reached -43 to -50 ms in runs at load 7-9 on this 2-core machine. 40 ms is held for
        # the kitewire subscriber, whose engine holds pictures to their audio; 60 ms for libwebrtc.
        for who, onsets, tolerance in (("kitewire", our_onsets, 0.040), ("official", their_onsets, 0.060)):
            offsets = onsets.offsets()
            # a beep every second from the first: all but the first and last few arrive as pairs
            assert len(offsets) >= SECONDS - 3, f"{who}: flashes {onsets.flashes}, beeps {onsets.beeps}"
            print(f"{who}: flash minus beep (ms): {[round(o * 1000) for o in offsets]}")
            # the first pair lands while the receivers' jitter buffers settle (libwebrtc's
            # NetEq starts deep and shrinks); from the second on, flash and beep are in step
            settled = offsets[1:]
            assert abs(float(np.median(settled))) <= tolerance, f"{who}: {offsets}"
            assert sum(abs(o) <= tolerance for o in settled) >= 2 / 3 * len(settled), f"{who}: {offsets}"
    finally:
        if publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        await official_viewer.disconnect()
