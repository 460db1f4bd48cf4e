"""The publisher answer lists the codec the AddTrackRequest asked for first (livekit-server's reorder)."""

from __future__ import annotations

import pytest
from kitewire.server import Server
from kitewire.server.media_settings import SERVER_CODECS
from kitewire.signal import connect, create_token
from kitewire.transport import PeerConnection, PeerConnectionConfig
from kitewire.transport.sdp import parse_sdp
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from .test_signalling import next_of

_SERVER_VIDEO_CODECS = {codec.name for codec in SERVER_CODECS if codec.kind == "video"}

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("asked", "first"), [("h264", "H264"), ("vp8", "VP8"), ("", "VP8")])
async def test_the_answer_puts_the_asked_codec_first(server: Server, asked: str, first: str) -> None:
    token = create_token("devkey", "secret", identity="pub", room="codecs")
    client, _ = await connect(server.url, token, legacy=True)
    pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    try:
        request = pb_rtc.SignalRequest()
        request.add_track.cid = "camera-track"
        request.add_track.type = pb_models.VIDEO
        request.add_track.name = "camera"
        if asked:
            request.add_track.simulcast_codecs.add(codec=asked, cid="camera-track")
        await client.send(request)
        await next_of(client, "track_published")
        pc.add_transceiver("video", "sendonly", stream_id="stream", track_id="camera-track")
        offer_sdp = await pc.create_offer()
        offered = [c.name for c in parse_sdp(offer_sdp).media[0].codecs]
        assert offered[0] == "VP8" and "H264" in offered, "the offer lists VP8 first, as a browser's does"
        offer = pb_rtc.SignalRequest()
        offer.offer.type = "offer"
        offer.offer.sdp = offer_sdp
        await client.send(offer)
        answer = await next_of(client, "answer", timeout=15)
        answered = [c.name for c in parse_sdp(answer.answer.sdp).media[0].codecs]
        assert answered[0] == first and sorted(answered) == sorted(set(offered) & _SERVER_VIDEO_CODECS)
    finally:
        await pc.close()
        await client.close()
