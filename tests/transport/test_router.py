"""RtpRouter: RTP demultiplexing with mid/rid learning, and RTCP dispatch to senders and receivers.

Transceivers are real ones with negotiated parameters set by hand; nothing is
sent (the send function records), so each routing decision is seen directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from kitewire.transport import Codec, RtpHeader, SendEncoding, Transceiver
from kitewire.transport.router import RtpRouter
from kitewire.transport.rtcp import (
    ReportBlock,
    build_fir,
    build_nack,
    build_pli,
    build_receiver_report,
    build_remb,
    build_sender_report,
    ntp_now,
    ntp_to_middle32,
)
from kitewire.transport.rtp import URI_MID, URI_RID, build_rtp_packet, encode_sdes_string

MID_ID, RID_ID = 1, 2
VP8 = Codec("video/VP8", 90000, payload_type=96)
OPUS = Codec("audio/opus", 48000, 2, payload_type=111)


def _call(callback: Callable[..., object] | None, *args: object) -> None:
    if callback is not None:
        callback(*args)


def _transceiver(mid: str, codec: Codec, *, encodings: list[SendEncoding] | None = None) -> Transceiver:
    kind: Literal["audio", "video"] = "video" if codec.kind == "video" else "audio"
    transceiver = Transceiver(
        lambda packet, rtcp: True,
        0xABC,
        kind,
        "sendrecv",
        codecs=None,
        send_encodings=encodings,
        stream_id=None,
        track_id=None,
    )
    transceiver.mid = mid
    transceiver.parameters.codecs = [codec]
    transceiver.parameters.extmap = {URI_MID: MID_ID, URI_RID: RID_ID}
    transceiver.remote_sends = True
    return transceiver


def _packet(ssrc: int, payload_type: int = 96, *, mid: str | None = None, rid: str | None = None) -> bytes:
    extensions: dict[int, bytes] = {}
    if mid is not None:
        extensions[MID_ID] = encode_sdes_string(mid)
    if rid is not None:
        extensions[RID_ID] = encode_sdes_string(rid)
    return build_rtp_packet(
        payload_type=payload_type,
        sequence_number=7,
        timestamp=9,
        ssrc=ssrc,
        payload=b"x",
        extensions=extensions or None,
    )


def _received(transceiver: Transceiver) -> list[RtpHeader]:
    got: list[RtpHeader] = []
    transceiver.receiver.on_rtp = lambda data, header: got.append(header)
    return got


def test_ssrcs_are_learned_from_mid_and_rid_and_then_routed_without_them() -> None:
    video, audio = _transceiver("0", VP8), _transceiver("1", OPUS)
    video.receiver.remote_rids = ["q", "f"]
    seen: list[int] = []
    router = RtpRouter(_call, observers=[lambda header, arrival: seen.append(header.ssrc)])
    router.update([video, audio])
    got = _received(video)
    router.on_rtp(_packet(1000, mid="0", rid="f"))
    router.on_rtp(_packet(1000))  # learned: no extensions needed any more
    assert [(h.ssrc, h.rid) for h in got] == [(1000, "f"), (1000, "f")]
    assert router.routes[1000] == (video.receiver, "f")
    assert video.receiver.ssrcs == {1000: "f"}
    assert seen == [1000, 1000]


def test_a_simulcast_packet_without_its_rid_is_delivered_but_not_learned() -> None:
    video = _transceiver("0", VP8)
    video.receiver.remote_rids = ["q", "f"]
    router = RtpRouter(_call)
    router.update([video])
    got = _received(video)
    router.on_rtp(_packet(2000, mid="0"))
    assert [(h.ssrc, h.rid) for h in got] == [(2000, None)]
    assert 2000 not in router.routes


def test_without_mid_only_a_payload_type_unique_to_one_m_line_routes() -> None:
    video, audio, other_video = _transceiver("0", VP8), _transceiver("1", OPUS), _transceiver("2", VP8)
    router = RtpRouter(_call)
    router.update([video, audio, other_video])
    got = _received(audio)
    router.on_rtp(_packet(3000, 111))
    assert [h.ssrc for h in got] == [3000]
    router.on_rtp(_packet(3001, 96))  # two video m-lines use 96: no guess
    router.on_rtp(_packet(3002, mid="9"))  # an unknown mid
    assert router.unroutable_rtp == 2


def test_broken_packets_are_counted_not_raised() -> None:
    router = RtpRouter(_call)
    router.update([_transceiver("0", VP8)])
    router.on_rtp(b"\x80\x60")
    router.on_rtcp(b"\x81\xc9\x00\x40")
    assert (router.malformed_rtp, router.malformed_rtcp) == (1, 1)


def test_feedback_reaches_the_sender_that_owns_the_ssrc() -> None:
    layers = [SendEncoding("q", 111), SendEncoding("f", 222)]
    video, audio = _transceiver("0", VP8, encodings=layers), _transceiver("1", OPUS)
    events: list[tuple[str, object]] = []
    video.sender.on_nack = lambda ssrc, lost: events.append(("nack", (ssrc, lost)))
    video.sender.on_keyframe_request = lambda ssrc: events.append(("keyframe", ssrc))
    video.sender.on_remb = lambda bitrate, ssrcs: events.append(("remb", bitrate))
    audio.sender.on_keyframe_request = lambda ssrc: events.append(("audio keyframe", ssrc))
    router = RtpRouter(_call)
    router.update([video, audio])
    router.on_rtcp(build_nack(5, 222, [10, 12]) + build_pli(5, 111))
    router.on_rtcp(build_fir(5, 222, 1))
    router.on_rtcp(build_remb(5, 300_000, [111]))
    router.on_rtcp(build_pli(5, 999))  # nobody's SSRC
    assert events == [("nack", (222, [10, 12])), ("keyframe", 111), ("keyframe", 222), ("remb", 300_000)]


def test_reports_update_stream_statistics_and_reach_callbacks() -> None:
    video = _transceiver("0", VP8, encodings=[SendEncoding("", 4242)])
    router = RtpRouter(_call)
    router.update([video])
    router.on_rtp(_packet(777, mid="0"))
    sender_reports: list[object] = []
    video.receiver.on_sender_report = sender_reports.append
    ntp = ntp_now()
    router.on_rtcp(build_sender_report(777, ntp, 9, 1, 1))
    assert len(sender_reports) == 1
    assert video.receiver.streams[777].last_sr == ntp_to_middle32(ntp)
    blocks: list[tuple[ReportBlock, float | None]] = []
    video.sender.on_receiver_report = lambda block, rtt: blocks.append((block, rtt))
    block = ReportBlock(4242, 64, 3, 100, 0, ntp_to_middle32(ntp_now()), 0)
    router.on_rtcp(build_receiver_report(1, [block]))
    assert [b.ssrc for b, _ in blocks] == [4242]
    rtt = blocks[0][1]
    assert rtt is not None and 0 <= rtt < 1.0
    stats = video.sender.streams[4242]
    assert stats.fraction_lost == 0.25 and stats.packets_lost == 3 and stats.rtt == rtt
