"""AVSynchronizer through kitewire serve: a clip with a flash at each beep reaches a kitewire
subscriber with the flash and the beep within 40 ms of each other, and an official subscriber
as well in step as the same clip from an official publisher through the same server (see the test)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from audio_peers import RoomFactory
from kitewire import rtc
from kitewire.bench.av_sync import ClipWatcher, settled_skew, source_stamp_skews
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from livekit import rtc as lk

pytestmark = pytest.mark.asyncio

SECONDS = 10.0
ROOT = Path(__file__).resolve().parents[2]
# the publishers import this tree's kitewire, whatever copy is installed
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
PUBLISHERS = ("kitewire", "official")


async def _publish(sdk: str, url: str, room_name: str) -> asyncio.subprocess.Process:
    """The clip played from a process of its own, as a file player would, through ``sdk``'s AVSynchronizer."""
    token = create_token(DEV_API_KEY, DEV_API_SECRET, identity=f"{sdk}-clip", room=room_name)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kitewire.bench.av_sync",
        "publish",
        "--sdk",
        sdk,
        "--url",
        url,
        "--token",
        token,
        "--seconds",
        str(SECONDS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )


@pytest.mark.timeout(120)
async def test_flash_and_beep_arrive_together_at_official_and_kitewire_subscribers(
    connect_room: RoomFactory, server: Server, room_name: str
) -> None:
    kitewire_viewer = await connect_room("kitewire-viewer")
    official_viewer = lk.Room()
    watchers = {"kitewire": ClipWatcher(rtc, kitewire_viewer), "official": ClipWatcher(lk, official_viewer)}
    await official_viewer.connect(
        server.url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="official-viewer", room=room_name)
    )
    # both clips play at once, so the four pairs are measured under the same load
    publishers = [await _publish(sdk, server.url, room_name) for sdk in PUBLISHERS]
    try:
        for watcher in watchers.values():
            await watcher.wait_for([f"{sdk}-clip" for sdk in PUBLISHERS], 30)
        logs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in publishers)), SECONDS + 40)
        for process, (_, log) in zip(publishers, logs, strict=True):
            assert process.returncode == 0, log.decode()[-2000:]
        await asyncio.sleep(1.0)  # the last pictures and samples reach the viewers
        for watcher in watchers.values():
            await watcher.close()
        skews: dict[tuple[str, str], float] = {}
        for viewer, watcher in watchers.items():
            for publisher in PUBLISHERS:
                onsets = watcher.onsets[f"{publisher}-clip"]
                offsets = onsets.offsets()
                print(f"{publisher} -> {viewer}: flash minus beep (ms): {[round(o * 1000) for o in offsets]}")
                # a beep every second from the first: all but the first and last few arrive as pairs
                assert len(offsets) >= SECONDS - 3, f"{publisher} -> {viewer}: {onsets.flashes}, {onsets.beeps}"
                skew = settled_skew(offsets)
                assert skew is not None
                skews[(publisher, viewer)] = skew
        # The kitewire subscriber holds each picture until it is as late as its stream's audio
        # (engine.lipsync): the 40 ms, from the second pair on, for a kitewire publisher.
        ours = watchers["kitewire"].onsets["kitewire-clip"].offsets()[1:]
        assert abs(skews[("kitewire", "kitewire")]) <= 0.040, ours
        assert sum(abs(o) <= 0.040 for o in ours) >= 2 / 3 * len(ours), ours

        # The official subscriber's sync is libwebrtc's: it leaves an audio/video difference
        # under 30 ms alone (StreamSynchronization's kMinDeltaMs), closes larger ones a step at a
        # time, and its NetEq holds audio longer than its video buffer holds pictures; an
        # official publisher through this server lands at -5 to -40 ms, further while it
        # settles under load (`kitewire bench av-sync`). So what is kitewire's to answer for is
        # the difference from that anchor, measured in this same room at this same moment: the
        # kitewire clip may be at most 15 ms further off than the official clip, or 40 ms off.
        # libwebrtc starts syncing once it has two sender reports of each track and then closes
        # the gap a step a second, so both clips are judged there on their later half.
        def later_half(publisher: str) -> float:
            offsets = watchers["official"].onsets[f"{publisher}-clip"].offsets()
            return abs(float(np.median(offsets[len(offsets) // 2 :])))

        allowed = max(0.040, later_half("official") + 0.015)
        assert later_half("kitewire") <= allowed, (skews, allowed)
    finally:
        for process in publishers:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await official_viewer.disconnect()


async def test_the_synchronizer_stamps_each_flash_and_its_beep_at_the_same_capture_instant() -> None:
    # What a receiver lines up is the capture stamps (the sender reports carry them): the
    # picture of media time t is captured when the audio of t is due to play out. Counted from
    # the queue's next 10 ms chunk (not from when the audio was pushed), the two agree within
    # the loop's wake-up latency; before, each picture could go up to a chunk early.
    skews = await source_stamp_skews(4.0)
    assert len(skews) >= 3, skews
    assert abs(float(np.median(skews))) <= 0.010, skews
