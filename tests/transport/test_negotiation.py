"""Offer/answer over the SDP model: what we offer, what we accept from an offer, what an answer narrows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kitewire.transport import DEFAULT_CODECS, Codec, Transceiver
from kitewire.transport.aiortc_seam import BundleTransport
from kitewire.transport.negotiation import Negotiator, apply_remote_media, validate_remote
from kitewire.transport.rtp import SUPPORTED_HEADER_EXTENSIONS, URI_MID, URI_RID, URI_TRANSPORT_CC
from kitewire.transport.sdp import SdpCodec, SdpMedia, SdpSession


@pytest.fixture
def negotiator() -> Iterator[Negotiator]:
    transport = BundleTransport([], loopback_only=True, on_rtp=print, on_rtcp=print, on_failure=print)
    yield Negotiator(
        transport, codecs=list(DEFAULT_CODECS), header_extensions=list(SUPPORTED_HEADER_EXTENSIONS), cname="c"
    )


def _transceiver(kind: str = "video", direction: str = "sendrecv") -> Transceiver:
    return Transceiver(
        lambda packet, rtcp: True,
        1,
        "video" if kind == "video" else "audio",
        "sendrecv" if direction == "sendrecv" else "recvonly",
        codecs=None,
        send_encodings=None,
        stream_id="s",
        track_id="t",
    )


def _offered_video(*codecs: SdpCodec, direction: str = "sendonly") -> SdpMedia:
    return SdpMedia(
        kind="video",
        port=9,
        protocol="UDP/TLS/RTP/SAVPF",
        formats=[str(c.payload_type) for c in codecs],
        mid="0",
        direction=direction,
        codecs=list(codecs),
        extmaps={URI_MID: 4, URI_TRANSPORT_CC: 5, "urn:example:unknown": 6},
        rids=[("q", "send"), ("f", "send")],
        simulcast=("send", ["f", "q"]),
    )


def test_offers_keep_payload_types_and_extension_ids_for_the_session(negotiator: Negotiator) -> None:
    video, audio = _transceiver(), _transceiver("audio")
    video.mid, audio.mid = "0", "1"
    first_video = negotiator.offer_media(video)
    first_audio = negotiator.offer_media(audio)
    assert [(c.name, c.payload_type) for c in first_video.codecs] == [
        ("VP8", 96),
        ("H264", 97),
        ("VP9", 98),
        ("AV1", 99),
        ("H265", 100),
    ]
    assert [(c.name, c.payload_type) for c in first_audio.codecs] == [("opus", 111)]
    assert URI_RID in first_video.extmaps and URI_RID not in first_audio.extmaps  # video-only extension
    assert first_audio.extmaps[URI_MID] == first_video.extmaps[URI_MID]
    again = _transceiver()
    again.mid = "2"
    assert negotiator.offer_media(again).extmaps == first_video.extmaps
    assert first_video.setup == "actpass" and first_video.fingerprints


def test_an_answer_takes_supported_codecs_feedback_and_extensions_and_the_simulcast_rids(
    negotiator: Negotiator,
) -> None:
    offered = _offered_video(
        SdpCodec(100, "H264", 90000, fmtp="packetization-mode=0;profile-level-id=42e01f"),
        SdpCodec(101, "H264", 90000, fmtp="packetization-mode=1;profile-level-id=640c1f", rtcp_feedback=["nack", "x"]),
        SdpCodec(102, "rtx", 90000, fmtp="apt=101"),
        SdpCodec(103, "VP8", 90000, rtcp_feedback=["transport-cc", "ccm fir"]),
    )
    transceiver = _transceiver(direction="recvonly")
    answer = negotiator.answer_media(offered, transceiver, "active")
    assert [(c.payload_type, c.name, c.rtcp_feedback) for c in answer.codecs] == [
        (101, "H264", ["nack"]),
        (103, "VP8", ["transport-cc", "ccm fir"]),
    ]
    assert answer.extmaps == {URI_MID: 4, URI_TRANSPORT_CC: 5}
    assert transceiver.header_extensions == answer.extmaps
    assert answer.direction == transceiver.current_direction == "recvonly"
    assert answer.rids == [("q", "recv"), ("f", "recv")] and answer.simulcast == ("recv", ["f", "q"])
    assert answer.setup == "active"


def test_an_offer_with_nothing_we_can_receive_is_answered_with_port_zero(negotiator: Negotiator) -> None:
    offered = _offered_video(SdpCodec(100, "AV1X", 90000), SdpCodec(101, "red", 90000))
    transceiver = _transceiver()
    answer = negotiator.answer_media(offered, transceiver, "active")
    assert answer.rejected and answer.mid == "0" and answer.formats == ["100", "101"]
    assert transceiver.codecs == [] and transceiver.current_direction is None


def test_applying_an_answer_narrows_our_offer(negotiator: Negotiator) -> None:
    transceiver = _transceiver()
    transceiver.mid = "0"
    offer = negotiator.offer_media(transceiver)
    vp8_pt = next(c.payload_type for c in offer.codecs if c.name == "VP8")
    answered = SdpMedia(
        kind="video",
        port=9,
        protocol=offer.protocol,
        formats=[str(vp8_pt)],
        mid="0",
        direction="recvonly",
        codecs=[SdpCodec(vp8_pt, "VP8", 90000, rtcp_feedback=["nack", "goog-lntf"])],
        extmaps={URI_MID: offer.extmaps[URI_MID], URI_RID: 14},  # a changed id is not taken
    )
    negotiator.apply_answer_media(transceiver, answered)
    assert transceiver.codecs == [Codec("video/VP8", 90000, payload_type=vp8_pt, rtcp_feedback=("nack",))]
    assert transceiver.header_extensions == {URI_MID: offer.extmaps[URI_MID]}
    assert transceiver.current_direction == "sendonly"


def test_remote_media_gives_the_remote_stream_rids_and_ssrcs() -> None:
    transceiver = _transceiver()
    media = _offered_video(SdpCodec(96, "VP8", 90000))
    media.msid = ("stream", "track")
    apply_remote_media(transceiver, media)
    assert (transceiver.remote_stream_id, transceiver.remote_track_id) == ("stream", "track")
    assert transceiver.receiver.rids == ["q", "f"] and transceiver.remote_sends
    plain = _offered_video(SdpCodec(96, "VP8", 90000), direction="recvonly")
    plain.rids, plain.simulcast = [], None
    plain.ssrcs = {1234: {"msid": "s2 t2"}}
    apply_remote_media(transceiver, plain)
    assert transceiver.receiver.ssrcs == {1234: None} and not transceiver.remote_sends
    assert transceiver.remote_track_id == "t2"


def _session(*media: SdpMedia) -> SdpSession:
    return SdpSession(media=list(media))


def test_remote_descriptions_are_checked_for_mids_ice_and_fingerprints() -> None:
    good = _offered_video(SdpCodec(96, "VP8", 90000))
    good.ice_ufrag, good.ice_pwd, good.fingerprints = "u", "p" * 22, [("sha-256", "AB")]
    assert validate_remote(_session(good), None) == (("u", "p" * 22, False), [("sha-256", "AB")])
    assert validate_remote(_session(SdpMedia("video", 0, "RTP/AVP", ["0"])), None) is None
    with pytest.raises(ValueError, match="ICE restart is not supported"):
        validate_remote(_session(good), "other")
    twin = _offered_video(SdpCodec(96, "VP8", 90000))
    with pytest.raises(ValueError, match="unique a=mid"):
        validate_remote(_session(good, twin), None)
    twin.mid, twin.ice_ufrag = "1", None
    with pytest.raises(ValueError, match="a=ice-ufrag and a=ice-pwd expected"):
        validate_remote(_session(twin), None)
    twin.ice_ufrag, twin.ice_pwd = "u", "p"
    with pytest.raises(ValueError, match="a=fingerprint expected"):
        validate_remote(_session(twin), None)


def test_an_answer_lists_the_codecs_asked_for_first(negotiator: Negotiator) -> None:
    offered = _offered_video(
        SdpCodec(96, "VP8", 90000),
        SdpCodec(97, "H264", 90000, fmtp="packetization-mode=1;profile-level-id=42e01f"),
    )
    transceiver = _transceiver(direction="recvonly")
    transceiver.answer_codec_order = ("h264",)
    answer = negotiator.answer_media(offered, transceiver, "active")
    assert [c.name for c in answer.codecs] == ["H264", "VP8"]
    assert answer.formats == ["97", "96"]
    assert [c.name for c in transceiver.codecs] == ["H264", "VP8"]
