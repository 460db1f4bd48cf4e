"""The wire client's own rules: msid parsing, AddTrackRequest building, the bounded trickle queue,
and which join answers send it from /rtc/v1 to /rtc."""

from __future__ import annotations

import logging

import pytest
from kitewire.engine import EngineError, IncomingTrack, WireClient, add_track_request, parse_msid
from kitewire.engine.wire import MAX_PENDING_CANDIDATES, SUBSCRIBER
from kitewire.media import VideoLayerPlan, plan_video_layers
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, SignalConnectError, create_token
from kitewire.transport import PeerConnectionConfig
from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from .proxy import legacy_only_proxy


class Recorder:
    """A WireListener that keeps what it is told."""

    def __init__(self) -> None:
        self.messages: list[signal_pb.SignalResponse] = []
        self.tracks: list[list[IncomingTrack]] = []
        self.closed: list[tuple[int, bool, str]] = []
        self.media_failures = 0
        self.data: list[tuple[models.DataPacket, bool]] = []

    def on_signal_message(self, message: signal_pb.SignalResponse) -> None:
        self.messages.append(message)

    async def on_incoming_tracks(self, tracks: list[IncomingTrack]) -> None:
        self.tracks.append(tracks)

    def on_signal_closed(self, reason: int, reconnectable: bool, detail: str) -> None:
        self.closed.append((reason, reconnectable, detail))

    def on_media_failed(self) -> None:
        self.media_failures += 1

    def on_data_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        self.data.append((packet, reliable))


def test_msid_names_participant_and_track() -> None:
    assert parse_msid("PA_1|TR_2", "TR_2") == ("PA_1", "TR_2")
    # Older servers: the participant sid alone as stream id.
    assert parse_msid("PA_1", "TR_2") == ("PA_1", "TR_2")
    # A track id that is not a track sid gives way to the one embedded in the stream id.
    assert parse_msid("PA_1|TR_2", "something") == ("PA_1", "TR_2")
    assert parse_msid(None, None) == ("", "")


def _add_track(codec: str, layers: list[VideoLayerPlan], simulcast: bool) -> signal_pb.AddTrackRequest:
    camera = models.TrackSource.CAMERA
    return add_track_request(
        cid="c1", name="cam", source=camera, codec=codec, layers=layers, simulcast=simulcast
    ).add_track


def test_add_track_request_carries_layers_and_rids_only_for_simulcast() -> None:
    layers = plan_video_layers(1280, 720, simulcast=True)
    add = _add_track("video/VP8", layers, True)
    assert (add.cid, add.name, add.type, add.width, add.height) == ("c1", "cam", models.TrackType.VIDEO, 1280, 720)
    assert [layer.rid for layer in add.layers] == [plan.rid for plan in layers] and len(layers) == 3
    assert [(layer.width, layer.bitrate) for layer in add.layers] == [(p.width, p.max_bitrate) for p in layers]
    assert [(c.codec, c.cid) for c in add.simulcast_codecs] == [("vp8", "c1")]
    single = _add_track("H264", plan_video_layers(640, 360, simulcast=False), False)
    assert [layer.rid for layer in single.layers] == [""] and (single.width, single.height) == (640, 360)
    assert single.simulcast_codecs[0].codec == "h264"
    with pytest.raises(ValueError, match="codec: expected one of VP8, H264, VP9, AV1, H265.*got 'VP7'"):
        _add_track("VP7", layers, True)
    with pytest.raises(ValueError, match="layers: expected at least one"):
        _add_track("VP8", [], False)


async def test_candidates_before_a_remote_description_wait_in_a_bounded_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wire = WireClient(Recorder(), PeerConnectionConfig(loopback_only=True))
    candidate = '{"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", "sdpMid": "0"}'
    with caplog.at_level(logging.WARNING, logger="kitewire.engine"):
        for port in range(MAX_PENDING_CANDIDATES + 10):
            trickle = signal_pb.TrickleRequest(candidateInit=candidate % (20000 + port), target=SUBSCRIBER)
            await wire._add_candidate(trickle)
    pending = wire._pending_candidates[SUBSCRIBER]
    assert len(pending) == MAX_PENDING_CANDIDATES
    # The first ones are kept: they are the ones a loopback server sends.
    assert "20000" in pending[0].candidate
    assert sum("dropping an ICE candidate" in r.message for r in caplog.records) == 10
    await wire.close(leave=False)


def _token(identity: str) -> str:
    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room="wire")


async def test_auto_falls_back_to_rtc_on_404_but_v1_only_does_not(server: Server) -> None:
    async with legacy_only_proxy(server.url) as proxy_url:
        only_v1 = WireClient(Recorder(), PeerConnectionConfig(loopback_only=True))
        with pytest.raises(SignalConnectError) as refused:
            await only_v1.connect(proxy_url, _token("v1-only"), auto_subscribe=True, join_mode="v1", timeout=5)
        assert refused.value.status == 404
        assert only_v1.publisher is None  # the join offer's PeerConnection was closed again
        await only_v1.close(leave=False)

        auto = WireClient(Recorder(), PeerConnectionConfig(loopback_only=True))
        try:
            join = await auto.connect(proxy_url, _token("auto"), auto_subscribe=True, join_mode="auto", timeout=5)
            assert join.participant.identity == "auto"
            assert not auto.single_pc
            assert not server.rooms.rooms["wire"].participants["auto"].single_pc
        finally:
            await auto.close(leave=True)


async def test_a_refusal_other_than_404_is_not_retried_over_rtc(server: Server) -> None:
    wire = WireClient(Recorder(), PeerConnectionConfig(loopback_only=True))
    bad = create_token(DEV_API_KEY, "not-the-secret", identity="bad", room="wire")
    with pytest.raises(SignalConnectError) as refused:
        await wire.connect(server.url, bad, auto_subscribe=True, timeout=5)
    assert refused.value.status == 401
    await wire.close(leave=False)


async def test_requests_after_close_raise_engine_error(server: Server) -> None:
    wire = WireClient(Recorder(), PeerConnectionConfig(loopback_only=True))
    await wire.connect(server.url, _token("closer"), auto_subscribe=True, timeout=5)
    assert wire.single_pc and wire.receiver_pc is wire.publisher
    await wire.close(leave=True)
    with pytest.raises(EngineError, match="not connected"):
        await wire.negotiate(1.0)
    with pytest.raises(EngineError, match="not connected"):
        await wire.send(signal_pb.SignalRequest())
