"""RTP header parsing, in-place rewriting and header extension value codecs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitewire.transport import rtp


def make(extensions: dict[int, bytes] | None = None, payload: bytes = b"payload") -> bytearray:
    return bytearray(
        rtp.build_rtp_packet(
            payload_type=96,
            sequence_number=65535,
            timestamp=0xFFFFFFFF,
            ssrc=0xDEADBEEF,
            payload=payload,
            marker=True,
            extensions=extensions,
        )
    )


def test_build_and_parse_round_trip_one_byte_form() -> None:
    packet = make({1: b"0", 3: b"\x01\x02\x03"})
    assert struct.unpack_from("!H", packet, 12)[0] == 0xBEDE
    header = rtp.parse_rtp_header(packet)
    assert (header.ssrc, header.sequence_number, header.timestamp) == (0xDEADBEEF, 65535, 0xFFFFFFFF)
    assert header.marker and header.payload_type == 96
    assert header.extensions == {1: b"0", 3: b"\x01\x02\x03"}
    assert packet[header.payload_offset : header.payload_end] == b"payload"


def test_two_byte_form_used_for_large_ids_or_values() -> None:
    packet = make({20: b"x" * 20, 2: b""})
    assert struct.unpack_from("!H", packet, 12)[0] & 0xFFF0 == 0x1000
    header = rtp.parse_rtp_header(packet)
    assert header.extensions == {20: b"x" * 20, 2: b""}
    assert packet[header.payload_offset :] == b"payload"


def test_padding_and_csrcs_are_skipped() -> None:
    base = make(payload=b"abc")
    # add 2 CSRCs and 4 bytes of padding
    packet = bytearray([base[0] | 0x20 | 0x02]) + base[1:12] + b"\x00" * 8 + base[12:] + b"\x00\x00\x00\x04"
    header = rtp.parse_rtp_header(packet)
    assert packet[header.payload_offset : header.payload_end] == b"abc"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x80\x60", "12 bytes"),
        (b"\x40" + b"\x00" * 11, "version"),
        (b"\x90" + b"\x00" * 11, "extension header"),
        (b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x05", "exceeds"),
        (b"\xa0" + b"\x00" * 11 + b"\x00\x00\x00\x40", "padding"),
        (b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x01" + b"\x1f\x00\x00\x00", "overruns"),
    ],
)
def test_malformed_packets_raise_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rtp.parse_rtp_header(data)


@given(st.binary(max_size=80))
def test_parser_never_raises_anything_but_value_error(data: bytes) -> None:
    try:
        rtp.parse_rtp_header(data)
    except ValueError:
        pass


def test_in_place_rewrites() -> None:
    packet = make({1: b"0", 2: b"q"})
    rtp.set_ssrc(packet, 42)
    rtp.set_sequence_number(packet, 70000)
    rtp.set_timestamp(packet, 1 << 33 | 5)
    rtp.set_payload_type(packet, 111)
    rtp.set_marker(packet, False)
    header = rtp.parse_rtp_header(packet)
    assert (header.ssrc, header.sequence_number, header.timestamp) == (42, 70000 & 0xFFFF, 5)
    assert header.payload_type == 111 and not header.marker
    rtp.set_marker(packet, True)
    assert rtp.parse_rtp_header(packet).payload_type == 111
    with pytest.raises(ValueError, match="0..127"):
        rtp.set_payload_type(packet, 128)


def test_rewrite_extension_id_and_remove() -> None:
    packet = make({1: b"0", 2: b"q", 5: b"\x00\x07"})
    assert rtp.rewrite_extension_id(packet, 2, 9)
    assert rtp.parse_rtp_header(packet).extensions == {1: b"0", 9: b"q", 5: b"\x00\x07"}
    assert not rtp.rewrite_extension_id(packet, 2, 3)
    with pytest.raises(ValueError, match="1..14"):
        rtp.rewrite_extension_id(packet, 9, 15)
    assert rtp.remove_extension(packet, 9)
    header = rtp.parse_rtp_header(packet)
    assert header.extensions == {1: b"0", 5: b"\x00\x07"}
    assert packet[header.payload_offset :] == b"payload"
    assert rtp.set_extension(packet, 5, b"\x00\x08")
    assert not rtp.set_extension(packet, 5, b"\x01")
    assert rtp.parse_rtp_header(packet).extensions[5] == b"\x00\x08"


def test_two_byte_rewrite_and_remove() -> None:
    packet = make({20: b"abc", 1: b"x" * 17})
    assert rtp.rewrite_extension_id(packet, 20, 200)
    assert rtp.remove_extension(packet, 1)
    header = rtp.parse_rtp_header(packet)
    assert header.extensions == {200: b"abc"}
    assert packet[header.payload_offset :] == b"payload"


def test_no_extension_block() -> None:
    packet = make()
    assert not rtp.rewrite_extension_id(packet, 1, 2)
    assert not rtp.remove_extension(packet, 1)
    assert rtp.parse_rtp_header(packet).extensions == {}


@given(st.integers(min_value=0, max_value=(1 << 32) * 1_000_000 - 1))
def test_abs_capture_time_round_trips_every_microsecond(us: int) -> None:
    value = rtp.encode_abs_capture_time(us)
    assert len(value) == 8
    assert rtp.decode_abs_capture_time(value) == (us, None)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_abs_capture_time_clock_offset_round_trips(offset: int) -> None:
    value = rtp.encode_abs_capture_time(5, offset)
    assert len(value) == 16
    assert rtp.decode_abs_capture_time(value) == (5, offset)


def test_abs_capture_time_is_ntp_q32() -> None:
    assert rtp.encode_abs_capture_time(1_500_000) == struct.pack("!Q", (1 << 32) + (1 << 31))
    with pytest.raises(ValueError, match=">= 0"):
        rtp.encode_abs_capture_time(-1)
    with pytest.raises(ValueError, match="8 or 16"):
        rtp.decode_abs_capture_time(b"\x00" * 7)


def test_video_orientation() -> None:
    for rotation in (0, 90, 180, 270):
        assert rtp.decode_video_orientation(rtp.encode_video_orientation(rotation)) == rotation
    assert rtp.encode_video_orientation(90) == b"\x01"
    assert rtp.decode_video_orientation(b"\x0b") == 270  # flip/camera bits ignored
    with pytest.raises(ValueError, match="0, 90, 180 or 270"):
        rtp.encode_video_orientation(45)


def test_abs_send_time_transport_cc_and_sdes() -> None:
    assert rtp.decode_abs_send_time(rtp.encode_abs_send_time(1.5)) == 1.5
    assert rtp.decode_abs_send_time(rtp.encode_abs_send_time(65.0)) == pytest.approx(1.0)
    assert rtp.decode_transport_cc(rtp.encode_transport_cc(70000)) == 70000 - 65536
    assert rtp.decode_sdes_string(rtp.encode_sdes_string("q")) == "q"
    assert rtp.decode_sdes_string(b"12\x00") == "12"
    with pytest.raises(ValueError, match="1..16"):
        rtp.encode_sdes_string("x" * 17)
    with pytest.raises(ValueError, match="ASCII"):
        rtp.encode_sdes_string("é")


def test_is_rtcp() -> None:
    assert rtp.is_rtcp(b"\x80\xc8\x00\x06")
    assert not rtp.is_rtcp(b"\x80\x60\x00\x06")


@given(
    fixed=st.dictionaries(st.integers(1, 7), st.binary(min_size=1, max_size=20), max_size=3),
    slot_values=st.lists(st.binary(min_size=0, max_size=20), max_size=3),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
)
def test_header_template_packets_equal_build_rtp_packet(
    fixed: dict[int, bytes], slot_values: list[bytes], sequence_number: int, timestamp: int, marker: bool
) -> None:
    slots = tuple((8 + index, len(value)) for index, value in enumerate(slot_values))
    template = rtp.RtpHeaderTemplate(payload_type=97, ssrc=0xCAFE, fixed=fixed, slots=slots)
    assert template.slot_count == len(slots)
    packet = template.packet(sequence_number, timestamp, marker, (b"ab", memoryview(b"cd")), tuple(slot_values))
    extensions = {**fixed, **{ext_id: value for (ext_id, _), value in zip(slots, slot_values, strict=True)}}
    assert packet == rtp.build_rtp_packet(
        payload_type=97,
        sequence_number=sequence_number,
        timestamp=timestamp,
        ssrc=0xCAFE,
        payload=b"abcd",
        marker=marker,
        extensions=extensions or None,
    )
    header = rtp.parse_rtp_header(packet)
    assert header.extensions == extensions
    assert (header.sequence_number, header.timestamp, header.marker) == (sequence_number, timestamp, marker)


def test_header_template_refuses_values_that_do_not_fit_its_slots() -> None:
    template = rtp.RtpHeaderTemplate(payload_type=96, ssrc=1, fixed={1: b"0"}, slots=((2, 8),))
    with pytest.raises(ValueError, match="1 slot values expected, got 0"):
        template.packet(1, 2, False, (b"x",))
    with pytest.raises(ValueError, match="8-byte slot value expected, got 3"):
        template.packet(1, 2, False, (b"x",), (b"abc",))
    with pytest.raises(ValueError, match="each extension id once"):
        rtp.RtpHeaderTemplate(payload_type=96, ssrc=1, fixed={2: b"0"}, slots=((2, 8),))
    with pytest.raises(ValueError, match="payload type 0..127"):
        rtp.RtpHeaderTemplate(payload_type=128, ssrc=1)
