"""Publishers get bandwidth feedback from the server and climb to their target bitrate."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect

pytestmark = pytest.mark.timeout(60)


async def _publisher_rates(room: rtc.Room) -> tuple[float, dict[str, float]]:
    """(BWE estimate in bps, target bitrate per rid) from the publisher's WebRTC stats."""
    stats = await room.get_rtc_stats()
    available = 0.0
    targets: dict[str, float] = {}
    for entry in stats.publisher_stats:
        kind = entry.WhichOneof("stats")
        if kind == "candidate_pair":
            available = max(available, entry.candidate_pair.candidate_pair.available_outgoing_bitrate)
        elif kind == "outbound_rtp":
            targets[entry.outbound_rtp.outbound.rid] = entry.outbound_rtp.outbound.target_bitrate
    return available, targets


async def test_720p_publisher_climbs_to_target_bitrate(server: Server, sdk_rooms: Connect) -> None:
    alice = await sdk_rooms("alice")
    source = rtc.VideoSource(1280, 720)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=True)
    options.video_codec = rtc.VideoCodec.VP8
    await alice.local_participant.publish_track(track, options)
    # Noise costs every bit the encoder is allowed, so its target follows the estimate.
    rng = np.random.default_rng(7)
    frames = [
        rtc.VideoFrame(
            1280, 720, rtc.VideoBufferType.RGBA, rng.integers(0, 256, (720, 1280, 4), dtype=np.uint8).tobytes()
        )
        for _ in range(4)
    ]
    start = time.monotonic()
    available: float = 0.0
    targets: dict[str, float] = {}
    index = 0
    while time.monotonic() - start < 20:
        source.capture_frame(frames[index % len(frames)])
        index += 1
        if index % 15 == 0:
            available, targets = await _publisher_rates(alice)
            if available >= 3_000_000 and targets.get("f", 0) >= 2_500_000:
                break
        await asyncio.sleep(1 / 30)
    # libwebrtc starts near 0.6 Mbps; only the server's transport-cc/REMB feedback raises it.
    assert available >= 3_000_000, f"estimate stayed at {available:.0f} bps"
    assert targets.get("f", 0) >= 2_500_000, f"top layer target {targets}"
