"""The H265 packetizer (RFC 7798): single NAL units, aggregation packets for parameter
sets, fragmentation units for large NAL units; round trips through the depacketizer,
real libx265 output through the encoder wrapper to decoded pictures, and odd input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.frames import VideoFrame
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.media.assembler import FrameAssembler
from kitewire.media.codecs import VideoDecoder, VideoEncoder
from kitewire.media.h264 import split_annexb
from kitewire.media.h265 import H265Depacketizer, H265Packetizer
from kitewire.media.keyframe import is_keyframe
from kitewire.media.packet_trailer import FrameMetadata, detach_metadata
from kitewire.media.packetizer import create_depacketizer, create_packetizer

START = b"\x00\x00\x00\x01"


def nal(nal_type: int, body: bytes, *, layer_id: int = 0, tid: int = 1) -> bytes:
    """An H265 NAL unit: the 2-byte header, then ``body``."""
    return bytes(((nal_type << 1) | (layer_id >> 5), ((layer_id & 0x1F) << 3) | tid)) + body


def annexb(*nals: bytes) -> bytes:
    return b"".join(START + unit for unit in nals)


def payload_type(payload: bytes) -> int:
    return (payload[0] >> 1) & 0x3F


VPS, SPS, PPS = nal(32, b"\x0c\x01\xff"), nal(33, b"\x01\x01\x60\x90"), nal(34, b"\xc1\x72")
IDR = nal(19, bytes(range(1, 250)) * 20)  # 4980 bytes: fragmented at 1200


def test_parameter_sets_aggregate_and_a_large_slice_fragments() -> None:
    payloads = H265Packetizer(1200).packetize(annexb(VPS, SPS, PPS, IDR))
    assert [payload_type(p) for p in payloads] == [48, 49, 49, 49, 49, 49]
    assert all(len(p) <= 1200 for p in payloads)
    ap = payloads[0]
    assert ap[2:] == b"".join(len(u).to_bytes(2, "big") + u for u in (VPS, SPS, PPS))
    fu_headers = [p[2] for p in payloads[1:]]
    assert fu_headers[0] == 0x80 | 19 and fu_headers[-1] == 0x40 | 19
    assert all(header == 19 for header in fu_headers[1:-1])
    # fragments share the NAL unit's body evenly (no runt last packet)
    sizes = [len(p) for p in payloads[1:]]
    assert max(sizes) - min(sizes) <= 1
    assert is_keyframe("video/H265", ap) and is_keyframe("video/H265", payloads[1])
    assert H265Depacketizer().depacketize(payloads) == annexb(VPS, SPS, PPS, IDR)


def test_a_nal_unit_that_fits_goes_alone_and_the_depacketizer_restores_it() -> None:
    slice_ = nal(1, b"\xaf" * 500)
    payloads = H265Packetizer().packetize(annexb(slice_))
    assert payloads == [slice_]
    # a 2-byte NAL unit (end of sequence) is a packet of its own too
    end_of_sequence = nal(36, b"")
    assert H265Packetizer().packetize(annexb(end_of_sequence)) == [end_of_sequence]
    assert H265Depacketizer().depacketize([end_of_sequence]) == annexb(end_of_sequence)
    # and small neighbours travel together
    assert H265Packetizer().packetize(annexb(slice_, end_of_sequence)) == [_ap(slice_, end_of_sequence)]


def _ap(*units: bytes) -> bytes:
    return nal(48, b"".join(len(u).to_bytes(2, "big") + u for u in units))


def test_aggregation_header_takes_the_lowest_layer_and_tid_and_any_forbidden_bit() -> None:
    high = nal(34, b"\x01", layer_id=3, tid=4)
    low = nal(39, b"\x02", layer_id=1, tid=2)
    ap = H265Packetizer().packetize(annexb(high, low))[0]
    assert payload_type(ap) == 48
    assert (((ap[0] & 1) << 5) | (ap[1] >> 3), ap[1] & 7) == (1, 2)
    assert not ap[0] & 0x80
    forbidden = bytes((0x80 | high[0],)) + high[1:]
    assert H265Packetizer().packetize(annexb(forbidden, low))[0][0] & 0x80


def test_access_unit_delimiters_and_asked_for_seis_are_dropped() -> None:
    aud, sei, suffix_sei = nal(35, b"\x10"), nal(39, b"\x05\x10" + b"x" * 16), nal(40, b"\x84")
    slice_ = nal(1, b"\x11" * 40)
    assert H265Packetizer().packetize(annexb(aud, slice_)) == [slice_]
    assert H265Packetizer(drop_sei=True).packetize(annexb(aud, sei, slice_, suffix_sei)) == [slice_]
    assert H265Packetizer().packetize(annexb(sei, slice_)) == [_ap(sei, slice_)]


def test_a_packet_that_would_overflow_starts_a_new_aggregation() -> None:
    units = [nal(1, bytes([index]) * 300) for index in range(1, 7)]
    payloads = H265Packetizer(700).packetize(annexb(*units))
    assert all(len(p) <= 700 for p in payloads)
    assert [payload_type(p) for p in payloads] == [48, 48, 48]
    assert H265Depacketizer().depacketize(payloads) == annexb(*units)


def test_odd_input_is_refused_with_value_errors() -> None:
    packetizer = H265Packetizer()
    for empty in (b"", START, START + START, b"\x00\x00\x01"):
        with pytest.raises(ValueError, match="expected an Annex-B access unit with NAL units"):
            packetizer.packetize(empty)
    with pytest.raises(ValueError, match="2-byte NAL unit header, got 1 byte"):
        packetizer.packetize(START + b"\x02")
    with pytest.raises(ValueError, match="2-byte NAL unit header"):
        packetizer.packetize(annexb(nal(1, b"\x01" * 8)) + START + b"\x26")
    for reserved in (48, 49, 50, 63):
        with pytest.raises(ValueError, match=f"expected NAL unit types 0-47, got {reserved}"):
            packetizer.packetize(annexb(nal(reserved, b"\x01\x02")))
    for size in (0, 3, True, 1.5):
        with pytest.raises(ValueError, match="max_payload_size >= 4"):
            H265Packetizer(size)  # type: ignore[arg-type]
    depacketizer = H265Depacketizer()
    for truncated in (b"", b"\x02"):
        with pytest.raises(ValueError, match="2-byte payload header"):
            depacketizer.depacketize([truncated])
    with pytest.raises(ValueError, match="H265 FU: expected at least 3 bytes"):
        depacketizer.depacketize([bytes((49 << 1, 1))])
    with pytest.raises(ValueError, match="H265 AP"):
        depacketizer.depacketize([nal(48, b"\x00\x09\x02")])


def test_the_factories_know_h265() -> None:
    packetizer = create_packetizer("video/H265", 500)
    assert isinstance(packetizer, H265Packetizer) and packetizer.max_payload_size == 500
    assert isinstance(create_packetizer("hevc"), H265Packetizer)
    assert isinstance(create_depacketizer("h265"), H265Depacketizer)


nal_units = st.builds(
    nal,
    st.sampled_from([*range(10), *range(16, 22), 32, 33, 34, 36, 39, 40]),
    # bodies free of start-code look-alikes (an encoder's emulation prevention sees to that)
    st.lists(st.integers(1, 255), max_size=3000).map(bytes),
    layer_id=st.integers(0, 63),
    tid=st.integers(1, 7),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(nal_units, min_size=1, max_size=8), st.integers(4, 1500), st.booleans())
def test_any_access_unit_round_trips_within_the_payload_size(
    units: list[bytes], max_payload_size: int, drop_sei: bool
) -> None:
    packetizer = H265Packetizer(max_payload_size, drop_sei=drop_sei)
    kept = [u for u in units if not (drop_sei and payload_type(u) in (39, 40))]
    if not kept:
        with pytest.raises(ValueError, match="NAL units"):
            packetizer.packetize(annexb(*units))
        return
    payloads = packetizer.packetize(annexb(*units))
    assert all(len(p) <= max_payload_size for p in payloads)
    assert H265Depacketizer().depacketize(payloads) == annexb(*kept)
    depacketizer = H265Depacketizer()
    assert depacketizer.is_frame_start(payloads[0])
    starts = [p for p in payloads if depacketizer.is_frame_start(p)]
    assert len(starts) == len(payloads) - sum(1 for p in payloads if payload_type(p) == 49 and not p[2] & 0x80)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(4, 300))
def test_any_bytes_packetize_or_raise_value_error(data: bytes, max_payload_size: int) -> None:
    try:
        payloads = H265Packetizer(max_payload_size).packetize(data)
    except ValueError:
        return
    assert payloads and all(len(p) <= max_payload_size for p in payloads)
    H265Depacketizer().depacketize(payloads)


def test_the_encoder_wrapper_codes_pictures_a_late_joiner_decodes() -> None:
    encoder = VideoEncoder("H265", 321, 241, 400_000)  # odd sizes code as the even size below
    assert (encoder.width, encoder.height) == (320, 240)
    sent = []
    for index in range(12):
        encoded = encoder.encode(make_pattern_frame(index, 320, 240), keyframe=index == 8)
        assert encoded, f"frame {index} coded to nothing"
        assert encoded.keyframe == (index in (0, 8))
        assert all(len(p) <= encoder.packetizer.max_payload_size for p in encoded)
        sent.append(encoded)
    # the keyframe carries its parameter sets (and no banner SEI): a decoder starting there shows it
    units = split_annexb(H265Depacketizer().depacketize(sent[8]))
    types = [payload_type(unit) for unit in units]
    assert types[:3] == [32, 33, 34] and (19 in types or 20 in types)
    assert 39 not in types and 40 not in types
    late = VideoDecoder("video/H265")
    assert late.decode(H265Depacketizer().depacketize(sent[5])) == []  # a delta frame alone: waits
    counters = []
    for encoded in sent[8:]:
        for picture in late.decode(H265Depacketizer().depacketize(encoded)):
            counters.append(read_frame_counter(VideoFrame.from_av(picture)))
    assert counters == [8, 9, 10, 11]
    encoder.request_keyframe()
    assert encoder.encode(make_pattern_frame(12, 320, 240)).keyframe
    encoder.set_bitrate(1_000_000)  # a reopened encoder starts on a keyframe
    assert encoder.bitrate == 1_000_000 and encoder.encode(make_pattern_frame(13, 320, 240)).keyframe
    assert not encoder.encode(make_pattern_frame(14, 320, 240)).keyframe
    encoder.close()


def test_bitrate_control_follows_the_target() -> None:
    def coded_bytes(bitrate: int) -> int:
        encoder = VideoEncoder("H265", 320, 240, bitrate)
        total = sum(
            len(p)
            for index in range(45)
            for p in encoder.encode(make_pattern_frame(index, 320, 240), capture_time=index / 30)
        )
        encoder.close()
        return total

    assert coded_bytes(600_000) > 2 * coded_bytes(100_000)


def test_assembled_rtp_decodes_across_sequence_and_timestamp_wraps() -> None:
    encoder = VideoEncoder("H265", 320, 240, 300_000, max_payload_size=400)
    assembler = FrameAssembler("H265")
    decoder = VideoDecoder("H265")
    counters = []
    seq, timestamp = 65530, 0xFFFFF000
    for index in range(10):
        payloads = encoder.encode(make_pattern_frame(index, 320, 240))
        for position, payload in enumerate(payloads):
            last = position == len(payloads) - 1
            for frame in assembler.push(seq & 0xFFFF, timestamp, last, payload, index / 30):
                for picture in decoder.decode(frame.data, keyframe=frame.keyframe):
                    counters.append(read_frame_counter(VideoFrame.from_av(picture)))
            seq += 1
        timestamp = (timestamp + 3000) & 0xFFFFFFFF
    assert counters == list(range(10))


def test_frame_metadata_rides_at_the_end_of_the_access_unit() -> None:
    # as for H264, the packet trailer follows the last NAL unit, which the packetizer keeps
    # whole; its bytes are XORed with 0xFF, so user data holding a start code is safe
    encoder = VideoEncoder("H265", 320, 240, 300_000)
    decoder = VideoDecoder("H265")
    for index in range(3):
        metadata = FrameMetadata(user_timestamp=1_700_000_000_000_000 + index, frame_id=index + 1, user_data=b"\0\0\1x")
        payloads = encoder.encode(make_pattern_frame(index, 320, 240), metadata=metadata)
        bitstream, carried = detach_metadata("H265", H265Depacketizer().depacketize(payloads))
        assert carried == metadata
        [picture] = decoder.decode(bitstream)
        assert read_frame_counter(VideoFrame.from_av(picture)) == index
    # LiveKit's XOR cannot keep every value clear: frame id 0xFFFFFFFE is 00 00 00 01 on the
    # wire, a start code before the trailer's last bytes; that frame is refused, not mangled
    with pytest.raises(ValueError, match="H265 packetizer: expected NAL unit types 0-47"):
        encoder.encode(make_pattern_frame(3, 320, 240), metadata=FrameMetadata(frame_id=0xFFFF_FFFE), keyframe=True)
    # the keyframe that went nowhere comes with the next frame
    after = encoder.encode(make_pattern_frame(4, 320, 240), metadata=FrameMetadata(frame_id=5))
    assert after.keyframe
    [picture] = decoder.decode(detach_metadata("H265", H265Depacketizer().depacketize(after))[0])
    assert read_frame_counter(VideoFrame.from_av(picture)) == 4
