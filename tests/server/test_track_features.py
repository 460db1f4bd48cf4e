"""What a publisher says about its track in AddTrackRequest is kept in the TrackInfo the room sees."""

from __future__ import annotations

from typing import cast

import pytest
from kitewire.server import Server
from kitewire.signal import connect, create_token
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

pytestmark = pytest.mark.timeout(60)


async def _published(request: pb_rtc.AddTrackRequest, server: Server) -> pb_models.TrackInfo:
    client, _ = await connect(
        server.url, create_token("devkey", "secret", identity="pub", room="r"), legacy=True, keepalive=False
    )
    try:
        await client.connection.send(pb_rtc.SignalRequest(add_track=request))
        while True:
            message = await client.connection.receive(timeout=5)
            assert message is not None, "no TrackPublished"
            if message.WhichOneof("message") == "track_published":
                assert message.track_published.cid == request.cid
                return message.track_published.track
    finally:
        await client.close()


async def test_audio_and_frame_metadata_features_are_kept(server: Server) -> None:
    request = pb_rtc.AddTrackRequest(
        cid="mic", name="mic", type=pb_models.AUDIO, source=pb_models.MICROPHONE, disable_dtx=True, stereo=True
    )
    request.disable_red = True
    request.audio_features.extend([pb_models.TF_STEREO, pb_models.TF_NO_DTX, pb_models.TF_STEREO])
    request.packet_trailer_features.append(pb_models.PTF_USER_TIMESTAMP)
    info = await _published(request, server)
    assert info.disable_dtx and info.stereo and info.disable_red
    # Each feature once, in the publisher's order.
    assert list(info.audio_features) == [pb_models.TF_STEREO, pb_models.TF_NO_DTX]
    assert list(info.packet_trailer_features) == [pb_models.PTF_USER_TIMESTAMP]


async def test_a_flood_of_feature_entries_is_cut_to_a_handful(server: Server) -> None:
    request = pb_rtc.AddTrackRequest(cid="cam", name="cam", type=pb_models.VIDEO, source=pb_models.CAMERA)
    # Unknown enum numbers are what a hostile client would send (proto3 enums are open).
    request.packet_trailer_features.extend(cast(list[pb_models.PacketTrailerFeature], list(range(10_000))))
    info = await _published(request, server)
    assert len(info.packet_trailer_features) == 16
    assert list(info.packet_trailer_features) == list(range(16))
