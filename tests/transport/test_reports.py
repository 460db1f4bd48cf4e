"""ReportGenerator: SRs for the SSRCs that sent lately, RRs (31 blocks at most each) for those received lately."""

from __future__ import annotations

import time

from kitewire.transport import Codec, SendEncoding, Transceiver
from kitewire.transport.reports import ReportGenerator
from kitewire.transport.rtcp import ReceiverReport, SenderReport, SourceDescription, parse_rtcp
from kitewire.transport.rtp import build_rtp_packet, parse_rtp_header


def _transceiver(ssrc: int) -> Transceiver:
    transceiver = Transceiver(
        lambda packet, rtcp: True,
        0x5EED,
        "video",
        "sendrecv",
        codecs=None,
        send_encodings=[SendEncoding("", ssrc)],
        stream_id=None,
        track_id=None,
    )
    transceiver.parameters.codecs = [Codec("video/VP8", 90000, payload_type=96)]
    return transceiver


def _receive(transceiver: Transceiver, ssrc: int, arrival: float) -> None:
    packet = build_rtp_packet(payload_type=96, sequence_number=1, timestamp=0, ssrc=ssrc, payload=b"x")
    transceiver.receiver.deliver(packet, parse_rtp_header(packet), arrival)


def test_sender_reports_count_what_was_sent_and_receiver_reports_come_in_chunks_of_31() -> None:
    sending, receiving, stopped = _transceiver(1111), _transceiver(2222), _transceiver(3333)
    for seq in range(3):
        sending.sender.send_rtp(
            build_rtp_packet(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=1111, payload=b"abcd")
        )
    now = time.monotonic()
    for ssrc in range(40):
        _receive(receiving, 10_000 + ssrc, now)
    _receive(receiving, 99_999, now - 60)  # quiet for a minute: no longer reported
    stopped.sender.send_rtp(build_rtp_packet(payload_type=96, sequence_number=0, timestamp=0, ssrc=3333, payload=b"x"))
    stopped.stop()
    generator = ReportGenerator(lambda: [sending, receiving, stopped], rtcp_ssrc=0x5EED, cname="me", interval=1.0)
    packets = [parse_rtcp(packet) for packet in generator.generate(now)]
    assert len(packets) == 3  # one SR, two RRs (31 + 9 blocks)
    report, sdes = packets[0]
    assert isinstance(report, SenderReport) and isinstance(sdes, SourceDescription)
    assert (report.ssrc, report.packet_count, report.octet_count) == (1111, 3, 12)
    assert report.rtp_timestamp >= 6000
    receiver_reports = [compound[0] for compound in packets[1:]]
    assert all(isinstance(rr, ReceiverReport) and rr.ssrc == 0x5EED for rr in receiver_reports)
    blocks = [block.ssrc for rr in receiver_reports for block in rr.reports]  # type: ignore[union-attr]
    assert [len(rr.reports) for rr in receiver_reports] == [31, 9]  # type: ignore[union-attr]
    assert sorted(blocks) == [10_000 + ssrc for ssrc in range(40)]


def test_nothing_sent_or_received_gives_no_reports() -> None:
    generator = ReportGenerator(lambda: [_transceiver(1)], rtcp_ssrc=7, cname="me", interval=1.0)
    assert generator.generate(time.monotonic()) == []
