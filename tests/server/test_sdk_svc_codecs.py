"""VP9 and AV1 from the official SDK reach an official subscriber through kitewire's server.

libwebrtc publishes both as one SVC stream (several spatial and temporal
layers on one SSRC); the SFU forwards it whole and starts each subscriber at a
keyframe (``kitewire.media.keyframe``), so the subscriber decodes every frame.
"""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader, in_order_fraction, subscribed_tracks

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    ("codec", "mime"), [(rtc.VideoCodec.VP9, "video/VP9"), (rtc.VideoCodec.AV1, "video/AV1")], ids=["vp9", "av1"]
)
@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
async def test_svc_codec_reaches_the_subscriber(
    server: Server, sdk_rooms: Connect, codec: int, mime: str, single_pc: bool
) -> None:
    bob = await sdk_rooms("bob", options=rtc.RoomOptions(single_peer_connection=single_pc))
    tracks = subscribed_tracks(bob)
    alice = await sdk_rooms("alice")
    # Small frames: AV1 and VP9 encoders are slow on a shared CI machine.
    publisher = CounterPublisher(alice, 320, 240, simulcast=True, codec=codec, fps=15, max_bitrate=600_000)
    reader: CounterReader | None = None
    try:
        publication = await publisher.start()
        track = await asyncio.wait_for(tracks.get(), 20)
        forwarded = server.rooms.rooms["room"].participants["alice"].published[publication.sid]
        assert forwarded.codec is not None and forwarded.codec.mime_type.lower() == mime.lower()
        reader = CounterReader(track)
        await asyncio.wait_for(reader.first_frame.wait(), 20)
        start = len(reader.counters)
        await asyncio.sleep(4)
        window = reader.window(start)
        fraction, increasing = in_order_fraction(window)
        # 15 fps for 4 s is 60 frames; a loaded machine may drop some at the encoder.
        assert len(set(window)) >= 20, f"only {len(set(window))} frames decoded in 4 s"
        assert increasing, f"frames out of order: {window[:40]}"
        assert fraction >= 0.5, f"decoded {fraction:.0%} of the counters sent, undecodable={reader.undecodable}"
    finally:
        await publisher.stop()
        if reader is not None:
            await reader.close()
