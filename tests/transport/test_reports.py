"""ReportGenerator: SRs for the SSRCs that sent lately, RRs (31 blocks at most each) for those received lately."""

from __future__ import annotations

import time

import pytest
from kitewire.transport import Codec, SendEncoding, Transceiver
from kitewire.transport.reports import ReportGenerator
from kitewire.transport.rtcp import (
    ReceiverReport,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_to_unix,
    parse_rtcp,
)
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


def test_a_sender_report_follows_the_media_clock_the_sender_is_given() -> None:
    sending = _transceiver(1111)
    # the stream's timestamps wrap between its clock's anchor and the report
    sending.sender.send_rtp(
        build_rtp_packet(payload_type=96, sequence_number=0, timestamp=0xFFFF_FF00, ssrc=1111, payload=b"x")
    )
    captured_at = time.time() - 0.5  # the anchor's timestamp stands for half a second ago
    sending.sender.media_clock = lambda ssrc: (0xFFFF_FF00, captured_at) if ssrc == 1111 else None
    generator = ReportGenerator(lambda: [sending], rtcp_ssrc=0x5EED, cname="me", interval=1.0)
    before = time.time()
    report = parse_rtcp(generator.generate(time.monotonic())[0])[0]
    after = time.time()
    assert isinstance(report, SenderReport)
    reported_at = ntp_to_unix(report.ntp_time)
    assert before - 0.001 <= reported_at <= after + 0.001
    # the RTP timestamp is the clock's at the report's NTP time: 0.5 s on from the anchor, wrapped
    expected = (0xFFFF_FF00 + round((reported_at - captured_at) * 90000)) & 0xFFFFFFFF
    assert abs(((report.rtp_timestamp - expected + 2**31) % 2**32) - 2**31) <= 2
    assert report.rtp_timestamp < 0x8000_0000  # it did wrap
    # without a clock (None), the last packet sent counts as sampled when it was sent
    sending.sender.media_clock = lambda ssrc: None
    report = parse_rtcp(generator.generate(time.monotonic())[0])[0]
    assert isinstance(report, SenderReport) and report.rtp_timestamp >= 0xFFFF_FF00


@pytest.mark.parametrize(
    "unix",
    [
        0.0,
        1_764_000_000.25,  # 2025
        2_085_978_495.5,  # the last second of NTP era 0 (2036-02-07 06:28:15)
        2_085_978_496.75,  # the first of era 1
        2_200_000_000.125,
    ],
)
def test_ntp_and_unix_times_convert_both_ways_across_the_era_wrap(unix: float) -> None:
    ntp = ntp_from_unix(unix)
    assert ntp < 2**64
    assert abs(ntp_to_unix(ntp) - unix) < 1e-6
