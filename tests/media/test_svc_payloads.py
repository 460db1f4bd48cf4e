"""VP9, AV1 and H265 RTP payload formats: real encoder output through packetizer and
depacketizer, the descriptor and aggregation header fields, keyframe rules, the VP9
picture id across its wrap, H265 receive end to end, and odd input."""

from __future__ import annotations

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.frames import VideoFrame
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.media import FrameAssembler, VideoDecoder, VideoEncoder, create_depacketizer, is_keyframe
from kitewire.media.av1 import Av1Depacketizer, Av1Packetizer
from kitewire.media.av1_obu import OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER, leb128, split_obus
from kitewire.media.h264 import split_annexb
from kitewire.media.h265 import H265Depacketizer
from kitewire.media.packet_trailer import FrameMetadata, attach_metadata, detach_metadata
from kitewire.media.vp9 import Vp9Depacketizer, Vp9Packetizer, parse_vp9_descriptor, read_vp9_descriptor


def encoded(codec: str, frames: int = 3, size: tuple[int, int] = (320, 240)) -> list[tuple[bytes, bool]]:
    """The raw bitstream of ``frames`` pattern frames (first a keyframe) from our encoder."""
    encoder = VideoEncoder(codec, *size, bitrate=300_000)
    depacketizer = create_depacketizer(codec)
    out = []
    for index in range(frames):
        frame = encoder.encode(make_pattern_frame(index, *size), keyframe=index == 0)
        out.append((depacketizer.depacketize(frame), frame.keyframe))
    encoder.close()
    return out


# -- VP9 ------------------------------------------------------------------------------


def test_vp9_descriptors_of_a_keyframe_and_a_delta_frame() -> None:
    (key, _), (delta, _) = encoded("VP9", 2)
    packetizer = Vp9Packetizer(max_payload_size=300, picture_id=0x7FFF)
    packetizer.width, packetizer.height = 320, 240
    key_payloads = packetizer.packetize(key)
    delta_payloads = packetizer.packetize(delta)
    assert all(len(payload) <= 300 for payload in key_payloads + delta_payloads)
    first, last = parse_vp9_descriptor(key_payloads[0]), parse_vp9_descriptor(key_payloads[-1])
    assert first.begins_frame and not first.inter_picture and first.flexible
    assert (first.width, first.height) == (320, 240) and first.picture_id == 0x7FFF
    assert last.ends_frame and not parse_vp9_descriptor(key_payloads[1]).begins_frame
    # the picture id wraps from 0x7FFF to 0; a delta frame names its reference
    delta_first = parse_vp9_descriptor(delta_payloads[0])
    assert delta_first.picture_id == 0 and delta_first.inter_picture and delta_first.width is None
    assert is_keyframe("video/VP9", key_payloads[0]) and not is_keyframe("video/VP9", key_payloads[1])
    assert not is_keyframe("video/VP9", delta_payloads[0])
    depacketizer = Vp9Depacketizer()
    assert depacketizer.depacketize(key_payloads) == key
    assert depacketizer.depacketize(delta_payloads) == delta


@settings(max_examples=25, deadline=None)
@given(start=st.integers(0, 0x7FFF))
def test_vp9_picture_ids_count_on_across_the_wrap(start: int) -> None:
    packetizer = Vp9Packetizer(picture_id=start)
    ids = [parse_vp9_descriptor(packetizer.packetize(b"\x80\x00\x00")[0]).picture_id for _ in range(40)]
    assert ids == [(start + step) & 0x7FFF for step in range(len(ids))]
    packetizer.picture_id = 0x7FFE
    assert [parse_vp9_descriptor(packetizer.packetize(b"\x80")[0]).picture_id for _ in range(3)] == [0x7FFE, 0x7FFF, 0]


def test_vp9_spatial_layers_of_one_picture_become_a_superframe() -> None:
    # two layer frames (B on each), as an SVC sender (libwebrtc's L2/L3 modes) sends them
    layer0 = bytes([0xB8, 0x80, 0x01, 0x00]) + b"\x82" * 5  # I, L, F, B; SID 0
    layer1 = bytes([0xBC, 0x80, 0x01, 0x02]) + b"\x86" * 300  # I, L, F, B, E; SID 1
    data = Vp9Depacketizer().depacketize([layer0, layer1])
    marker = data[-1]
    assert marker & 0xE0 == 0xC0 and (marker & 0x07) + 1 == 2
    size_bytes = ((marker >> 3) & 0x03) + 1
    index = data[-(2 + 2 * size_bytes) :]
    assert index[0] == marker
    assert [int.from_bytes(index[1 + i * size_bytes : 1 + (i + 1) * size_bytes], "little") for i in range(2)] == [
        5,
        300,
    ]
    assert data.startswith(b"\x82" * 5 + b"\x86" * 300)


def test_vp9_truncated_descriptors_are_refused() -> None:
    assert read_vp9_descriptor(b"") is None
    assert read_vp9_descriptor(bytes([0x80])) is None  # I without the picture id
    assert read_vp9_descriptor(bytes([0x82, 0x05])) is None  # V without the structure
    with pytest.raises(ValueError, match="VP9 payload descriptor"):
        parse_vp9_descriptor(bytes([0xA0, 0x85]))
    with pytest.raises(ValueError, match="B=1"):
        Vp9Depacketizer().depacketize([bytes([0x80, 0x01, 0x00])])


# -- AV1 ------------------------------------------------------------------------------


def test_av1_fragments_obus_and_rebuilds_the_temporal_unit() -> None:
    (key, _), (delta, _) = encoded("AV1", 2)
    packetizer = Av1Packetizer(max_payload_size=120)
    payloads = packetizer.packetize(key)
    assert len(payloads) > 3 and all(len(payload) <= 120 for payload in payloads)
    assert payloads[0][0] & 0x08  # N: a new coded video sequence
    assert payloads[0][0] & 0x80 == 0 and payloads[1][0] & 0x80  # Z on a continued OBU
    assert is_keyframe("video/AV1", payloads[0]) and not is_keyframe("video/AV1", payloads[1])
    rebuilt = Av1Depacketizer().depacketize(payloads)
    sent = [(t, p) for t, _, p in split_obus(key) if t != OBU_TEMPORAL_DELIMITER]
    got = list(split_obus(rebuilt))
    assert got[0][0] == OBU_TEMPORAL_DELIMITER
    assert [(t, p) for t, _, p in got[1:]] == sent
    delta_payloads = packetizer.packetize(delta)
    assert not is_keyframe("video/AV1", delta_payloads[0])


def test_av1_counted_elements_and_bad_aggregation_headers() -> None:
    sequence = bytes((OBU_SEQUENCE_HEADER << 3,)) + b"\x01\x02\x03"
    frame = bytes((6 << 3,)) + b"\x10" * 4
    # W=2: the first element length-prefixed, the last one not
    payload = bytes((0x20,)) + leb128(len(sequence)) + sequence + frame
    assert is_keyframe("video/AV1", payload)
    obus = list(split_obus(Av1Depacketizer().depacketize([payload])))
    assert [t for t, _, _ in obus] == [OBU_TEMPORAL_DELIMITER, OBU_SEQUENCE_HEADER, 6]
    with pytest.raises(ValueError, match="Z=0"):
        Av1Depacketizer().depacketize([bytes((0x90,)) + b"\x01\x30"])
    with pytest.raises(ValueError, match="never finished"):
        Av1Depacketizer().depacketize([bytes((0x50,)) + b"\x01\x30"])
    with pytest.raises(ValueError, match="runs past"):
        Av1Depacketizer().depacketize([bytes((0x00, 0x09)) + b"\x30"])


def test_av1_frame_metadata_rides_in_a_metadata_obu_after_the_sequence_header() -> None:
    (key, _), (delta, _) = encoded("AV1", 2)
    metadata = FrameMetadata(user_timestamp=123, frame_id=9)
    carried = attach_metadata("AV1", key, metadata)
    types = [t for t, _, _ in split_obus(carried)]
    assert types[types.index(OBU_SEQUENCE_HEADER) + 1] == 5  # metadata OBU right after
    assert detach_metadata("AV1", carried) == (key, metadata)
    assert detach_metadata("AV1", attach_metadata("AV1", delta, metadata)) == (delta, metadata)
    assert detach_metadata("AV1", delta) == (delta, None)


# -- H265 (receive) ---------------------------------------------------------------------


def _h265_payloads(access_unit: bytes, max_size: int = 900) -> list[bytes]:
    """RFC 7798 single NAL units and fragmentation units (what a sender writes)."""
    payloads = []
    for nal in split_annexb(access_unit):
        if len(nal) <= max_size:
            payloads.append(nal)
            continue
        header, body = nal[:2], nal[2:]
        nal_type = (header[0] >> 1) & 0x3F
        fu_indicator = bytes(((header[0] & 0x81) | (49 << 1), header[1]))
        chunks = [body[i : i + max_size] for i in range(0, len(body), max_size)]
        for index, chunk in enumerate(chunks):
            fu_header = nal_type | (0x80 if index == 0 else 0) | (0x40 if index == len(chunks) - 1 else 0)
            payloads.append(fu_indicator + bytes((fu_header,)) + chunk)
    return payloads


def test_h265_from_rtp_to_decoded_pictures() -> None:
    encoder = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "x265-params": "log-level=none:bframes=0"}
    encoder.open()
    assembler = FrameAssembler("H265")
    decoder = VideoDecoder("video/H265")
    counters = []
    seq, timestamp = 65530, 0xFFFFF000  # across both wraps on the way
    for index in range(10):
        picture = make_pattern_frame(index, 320, 240).to_av()
        picture.pts = index
        access_unit = b"".join(bytes(packet) for packet in encoder.encode(picture))
        payloads = _h265_payloads(access_unit)
        if index == 0:
            assert is_keyframe("video/H265", payloads[0])
        for position, payload in enumerate(payloads):
            for frame in assembler.push(seq & 0xFFFF, timestamp, position == len(payloads) - 1, payload, index / 30):
                for decoded in decoder.decode(frame.data, keyframe=frame.keyframe):
                    counters.append(read_frame_counter(VideoFrame.from_av(decoded)))
            seq += 1
        timestamp = (timestamp + 3000) & 0xFFFFFFFF
    assert counters == list(range(10))


def test_h265_aggregation_packets_and_bad_fragments() -> None:
    vps, sps = bytes((32 << 1, 1)) + b"\x0c", bytes((33 << 1, 1)) + b"\x01\x01"
    ap = bytes((48 << 1, 1)) + len(vps).to_bytes(2, "big") + vps + len(sps).to_bytes(2, "big") + sps
    assert H265Depacketizer().depacketize([ap]) == b"\x00\x00\x00\x01" + vps + b"\x00\x00\x00\x01" + sps
    assert is_keyframe("video/H265", ap)
    with pytest.raises(ValueError, match="start fragment"):
        H265Depacketizer().depacketize([bytes((49 << 1, 1, 0x01)) + b"\x00"])
    with pytest.raises(ValueError, match="end fragment"):
        H265Depacketizer().depacketize([bytes((49 << 1, 1, 0x81)) + b"\x00"])


# -- odd input ------------------------------------------------------------------------


def test_an_av1_obu_cut_inside_its_extension_header_is_refused() -> None:
    # one byte saying "an extension byte follows", and nothing after it (once looped forever)
    with pytest.raises(ValueError, match="header bytes"):
        Av1Depacketizer().depacketize([bytes((0x10, 0x04))])
    with pytest.raises(ValueError, match="LEB128"):
        leb128(-1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_odd_payloads_give_value_errors_and_keyframe_rules_never_raise(payloads: list[bytes]) -> None:
    for codec, depacketizer in (("VP9", Vp9Depacketizer()), ("AV1", Av1Depacketizer()), ("H265", H265Depacketizer())):
        for payload in payloads:
            is_keyframe(codec, payload)
            depacketizer.is_frame_start(payload)
        try:
            depacketizer.depacketize(payloads)
        except ValueError:
            pass
        detach_metadata(codec, b"".join(payloads))


@pytest.mark.parametrize("codec", ["VP9", "AV1"])
def test_odd_sizes_are_coded_as_they_are(codec: str) -> None:
    picture = av.VideoFrame(641, 479, "yuv420p")
    for plane in picture.planes:
        plane.update(bytes(plane.buffer_size))
    frame = VideoEncoder(codec, 641, 479, bitrate=300_000).encode(picture, keyframe=True)
    decoded = VideoDecoder(codec).decode(create_depacketizer(codec).depacketize(frame))
    assert [(picture.width, picture.height) for picture in decoded] == [(641, 479)]
