"""RTCP parse/build round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitewire.transport import rtcp


def test_sender_report_with_blocks_and_sdes_compound() -> None:
    block = rtcp.ReportBlock(
        ssrc=7,
        fraction_lost=12,
        packets_lost=-3,
        highest_sequence=70000,
        jitter=40,
        last_sr=99,
        delay_since_last_sr=65536,
    )
    data = rtcp.build_sender_report(1, 0x1122334455667788, 1234, 10, 1000, [block]) + rtcp.build_sdes(1, "cname-x")
    sr, sdes = rtcp.parse_rtcp(data)
    assert sr == rtcp.SenderReport(1, 0x1122334455667788, 1234, 10, 1000, [block])
    assert sdes == rtcp.SourceDescription({1: "cname-x"})


def test_receiver_report_and_bye() -> None:
    blocks = [rtcp.ReportBlock(i, 0, 0, i, 0, 0, 0) for i in range(3)]
    rr, bye = rtcp.parse_rtcp(rtcp.build_receiver_report(5, blocks) + rtcp.build_bye([5, 6]))
    assert rr == rtcp.ReceiverReport(5, blocks) and bye == rtcp.Bye([5, 6])
    with pytest.raises(ValueError, match="31"):
        rtcp.build_receiver_report(5, [blocks[0]] * 32)


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=60, unique=True))
def test_nack_round_trip(lost: list[int]) -> None:
    (nack,) = rtcp.parse_rtcp(rtcp.build_nack(1, 2, lost))
    assert isinstance(nack, rtcp.Nack)
    assert (nack.sender_ssrc, nack.media_ssrc) == (1, 2)
    assert sorted(nack.lost) == sorted(lost)


def test_nack_packs_ranges_and_wraps() -> None:
    data = rtcp.build_nack(1, 2, [65534, 65535, 0, 1])
    assert len(data) == 16  # one PID+BLP item covers all four across the wrap
    (nack,) = rtcp.parse_rtcp(data)
    assert isinstance(nack, rtcp.Nack) and nack.lost == [65534, 65535, 0, 1]


def test_pli_fir_remb() -> None:
    pli, fir, remb = rtcp.parse_rtcp(
        rtcp.build_pli(1, 2) + rtcp.build_fir(1, 3, 9) + rtcp.build_remb(1, 2_500_000, [2, 3])
    )
    assert pli == rtcp.Pli(1, 2)
    assert fir == rtcp.Fir(1, [(3, 9)])
    assert isinstance(remb, rtcp.Remb) and remb.ssrcs == [2, 3]
    assert abs(remb.bitrate - 2_500_000) <= 2_500_000 >> 17


@given(
    st.lists(st.one_of(st.none(), st.integers(0, 4_000_000)), min_size=1, max_size=400).filter(
        lambda xs: xs[0] is not None
    ),
    st.integers(0, 0xFFFF),
)
def test_transport_cc_round_trip(offsets: list[int | None], base: int) -> None:
    start = 10_000_000_000
    packets = [((base + i) & 0xFFFF, None if off is None else start + off) for i, off in enumerate(offsets)]
    (fb,) = rtcp.parse_rtcp(rtcp.build_transport_cc(1, 2, base, start, 7, packets))
    assert isinstance(fb, rtcp.TransportCcFeedback)
    assert fb.base_sequence == base and fb.feedback_count == 7
    assert [s for s, _ in fb.packets] == [s for s, _ in packets]
    assert fb.reference_time_us == start // 64000 * 64000
    for (_, sent), (_, got) in zip(packets, fb.packets):
        assert (sent is None) == (got is None)
        if sent is not None and got is not None:
            # quantised to 250 us steps without accumulating error
            assert 0 <= sent - got < 250


def test_malformed_rtcp_raises_value_error() -> None:
    with pytest.raises(ValueError):
        rtcp.parse_rtcp(b"\x80\xc8")
    with pytest.raises(ValueError, match="version"):
        rtcp.parse_rtcp(b"\x40\xc8\x00\x00")
    with pytest.raises(ValueError, match="claims"):
        rtcp.parse_rtcp(b"\x80\xc9\x00\x05\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="SR"):
        rtcp.parse_rtcp(b"\x80\xc8\x00\x01\x00\x00\x00\x01")


@given(st.binary(max_size=100))
def test_parser_never_raises_anything_but_value_error(data: bytes) -> None:
    try:
        rtcp.parse_rtcp(data)
    except ValueError:
        pass


def test_unknown_packets_are_kept() -> None:
    data = b"\x81\xcc\x00\x02" + b"\x00\x00\x00\x01" + b"ABCD"  # APP
    (packet,) = rtcp.parse_rtcp(data)
    assert isinstance(packet, rtcp.UnknownRtcp) and packet.packet_type == 204


def test_ntp_helpers() -> None:
    now = rtcp.ntp_now()
    assert now >> 32 > 3_900_000_000  # after 2023 on the NTP timescale
    assert rtcp.ntp_to_middle32(0x1122334455667788) == 0x33445566
