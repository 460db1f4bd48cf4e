"""VP8 (RFC 7741) and H264 (RFC 6184) packetizers/depacketizers and keyframe detection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media import (
    H264Depacketizer,
    H264Packetizer,
    Vp8Depacketizer,
    Vp8Packetizer,
    create_depacketizer,
    create_packetizer,
    is_keyframe,
    parse_vp8_descriptor,
    split_annexb,
)

# A VP8 key frame starts with a frame tag whose lowest bit is 0, then 9d 01 2a.
VP8_KEY_BITSTREAM = b"\x50\x42\x00\x9d\x01\x2a\x80\x02\xe0\x01" + bytes(range(200))
VP8_DELTA_BITSTREAM = b"\x31\x05\x00" + bytes(range(100))


# -- VP8 ----------------------------------------------------------------------


def test_vp8_descriptor_as_libwebrtc_sends_it_with_all_fields() -> None:
    # X=1 S=1 PID=0 | I=1 L=1 T=1 K=1 | M=1 PictureID=0x1234 | TL0PICIDX=7 | TID=2 Y=1 KEYIDX=5
    payload = bytes([0x90, 0xF0, 0x80 | 0x12, 0x34, 0x07, (2 << 6) | 0x20 | 5]) + VP8_KEY_BITSTREAM
    descriptor = parse_vp8_descriptor(payload)
    assert descriptor.start_of_partition and descriptor.partition_id == 0
    assert not descriptor.non_reference
    assert descriptor.picture_id == 0x1234 and descriptor.picture_id_15bit
    assert descriptor.tl0_pic_idx == 7
    assert descriptor.tid == 2 and descriptor.layer_sync
    assert descriptor.key_idx == 5
    assert descriptor.header_size == 6
    assert is_keyframe("video/VP8", payload)
    assert Vp8Depacketizer().depacketize([payload]) == VP8_KEY_BITSTREAM


def test_vp8_descriptor_minimal_and_seven_bit_picture_id() -> None:
    minimal = parse_vp8_descriptor(b"\x10" + VP8_KEY_BITSTREAM)
    assert minimal.header_size == 1 and minimal.picture_id is None and minimal.tid is None
    short = parse_vp8_descriptor(b"\xa3\x80\x05" + VP8_DELTA_BITSTREAM)
    assert short.picture_id == 5 and not short.picture_id_15bit
    assert short.non_reference and short.partition_id == 3 and not short.start_of_partition
    assert short.header_size == 3


@pytest.mark.parametrize(
    "truncated",
    [b"", b"\x80", b"\x80\x80", b"\x80\x80\x80", b"\x80\x40", b"\x80\x20", b"\x80\xc0\x05"],
)
def test_vp8_truncated_descriptor_raises_value_error(truncated: bytes) -> None:
    with pytest.raises(ValueError, match="VP8"):
        parse_vp8_descriptor(truncated)
    assert not is_keyframe("video/VP8", truncated)


def test_vp8_packetizer_splits_evenly_and_advances_picture_id_with_wrap() -> None:
    packetizer = Vp8Packetizer(max_payload_size=100, picture_id=0x7FFF)
    frame = bytes(range(256)) * 3
    payloads = packetizer.packetize(frame)
    assert all(len(p) <= 100 for p in payloads)
    sizes = [len(p) for p in payloads]
    assert max(sizes) - min(sizes) <= 1
    descriptors = [parse_vp8_descriptor(p) for p in payloads]
    assert [d.start_of_partition for d in descriptors] == [True] + [False] * (len(payloads) - 1)
    assert {d.picture_id for d in descriptors} == {0x7FFF}
    assert all(d.picture_id_15bit for d in descriptors)
    assert Vp8Depacketizer().depacketize(payloads) == frame
    assert parse_vp8_descriptor(packetizer.packetize(b"\x01")[0]).picture_id == 0


def test_vp8_depacketizer_rejects_frames_not_starting_at_partition_zero() -> None:
    payloads = Vp8Packetizer(50).packetize(bytes(200))
    with pytest.raises(ValueError, match="S=1"):
        Vp8Depacketizer().depacketize(payloads[1:])
    with pytest.raises(ValueError, match="at least one"):
        Vp8Depacketizer().depacketize([])


def test_vp8_keyframe_rules() -> None:
    packetizer = Vp8Packetizer(1200)
    key = packetizer.packetize(VP8_KEY_BITSTREAM)
    delta = packetizer.packetize(VP8_DELTA_BITSTREAM)
    assert is_keyframe("video/VP8", key[0])
    assert is_keyframe("VP8", key[0]) and is_keyframe("video/vp8", key[0]) and is_keyframe("Video/Vp8", key[0])
    assert not is_keyframe("video/VP8", delta[0])
    # S=1 but partition 1: not the start of the frame.
    assert not is_keyframe("video/VP8", b"\x11" + VP8_KEY_BITSTREAM)
    # Continuation packet (S=0) of a keyframe.
    assert not is_keyframe("video/VP8", b"\x00" + VP8_KEY_BITSTREAM)
    # Descriptor only, no frame tag.
    assert not is_keyframe("video/VP8", b"\x90\x80\x81\x02")
    assert is_keyframe("video/VP8", memoryview(bytearray(key[0])))
    assert not is_keyframe("video/VP9", key[0])
    assert not is_keyframe("", key[0])


# -- H264 ---------------------------------------------------------------------

SPS = b"\x67\x42\xe0\x1f" + bytes(range(1, 12))
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88" + bytes(range(1, 255)) * 12  # ~3 kB
SLICE = b"\x41\x9a" + bytes(range(1, 200))


def annexb(*nals: bytes, long_codes: bool = True) -> bytes:
    code = b"\x00\x00\x00\x01" if long_codes else b"\x00\x00\x01"
    return b"".join(code + nal for nal in nals)


def test_split_annexb_handles_both_start_codes_and_trailing_zeros() -> None:
    stream = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00" + b"\x00\x00\x00\x01" + SLICE
    assert split_annexb(stream) == [SPS, PPS, SLICE]
    assert split_annexb(SLICE) == [SLICE]
    assert split_annexb(b"") == []
    assert split_annexb(b"\x00\x00\x01\x00\x00\x01") == []


def test_h264_small_nals_are_aggregated_in_a_stap_a_and_large_ones_fragmented() -> None:
    payloads = H264Packetizer(1200).packetize(annexb(b"\x09\xf0", SPS, PPS, IDR))
    stap, *fragments = payloads
    assert stap[0] & 0x1F == 24
    assert stap[1:] == len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    assert stap[0] & 0x60 == 0x60 or stap[0] & 0x60 == max(SPS[0] & 0x60, PPS[0] & 0x60)
    assert [p[0] & 0x1F for p in fragments] == [28] * len(fragments)
    assert fragments[0][1] & 0x80 and not fragments[0][1] & 0x40
    assert fragments[-1][1] & 0x40 and not fragments[-1][1] & 0x80
    assert all(len(p) <= 1200 for p in payloads)
    assert H264Depacketizer().depacketize(payloads) == annexb(SPS, PPS, IDR)  # AUD dropped
    assert [is_keyframe("video/H264", p) for p in payloads] == [True, True] + [False] * (len(fragments) - 1)


@pytest.mark.parametrize("mtu", [100, 1200])
def test_h264_nal_exactly_at_mtu_is_single_and_one_more_byte_fragments(mtu: int) -> None:
    exact = b"\x41" + b"\xaa" * (mtu - 1)
    assert H264Packetizer(mtu).packetize(annexb(exact)) == [exact]
    over = b"\x41" + b"\xaa" * mtu
    payloads = H264Packetizer(mtu).packetize(annexb(over))
    assert len(payloads) == 2 and all(p[0] & 0x1F == 28 for p in payloads)
    assert all(len(p) <= mtu for p in payloads)
    assert H264Depacketizer().depacketize(payloads) == annexb(over)


def test_h264_stap_a_never_exceeds_mtu_and_tiny_nals_all_survive() -> None:
    tiny = [bytes([0x06, index]) for index in range(1, 200)]
    payloads = H264Packetizer(100).packetize(annexb(*tiny, long_codes=False))
    assert len(payloads) > 1
    assert all(len(p) <= 100 and p[0] & 0x1F == 24 for p in payloads)
    assert split_annexb(H264Depacketizer().depacketize(payloads)) == tiny


def test_h264_drop_sei_option() -> None:
    payloads = H264Packetizer(1200, drop_sei=True).packetize(annexb(b"\x06\x05\x10" + bytes(16), SPS, PPS))
    assert split_annexb(H264Depacketizer().depacketize(payloads)) == [SPS, PPS]


def test_h264_depacketizer_reads_libwebrtc_style_stap_a_then_fu_a() -> None:
    stap = b"\x78" + len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    body = IDR[1:]
    fu = [
        bytes([0x7C, 0x85]) + body[:1000],
        bytes([0x7C, 0x05]) + body[1000:2000],
        bytes([0x7C, 0x45]) + body[2000:],
    ]
    depacketizer = H264Depacketizer()
    assert depacketizer.is_frame_start(stap) and depacketizer.is_frame_start(fu[0])
    assert not depacketizer.is_frame_start(fu[1])
    assert depacketizer.is_keyframe(stap) and depacketizer.is_keyframe(fu[0]) and not depacketizer.is_keyframe(fu[1])
    restored = depacketizer.depacketize([stap, *fu])
    assert restored == annexb(SPS, PPS, b"\x65" + body)


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ([b"\x7c\x05abc"], "start fragment"),
        ([b"\x7c\x85abc"], "end fragment"),
        ([b"\x7c\x85abc", b"\x41\x9a"], "end fragment"),
        ([b"\x7c\x85abc", b"\x7c\x85abc"], "continuation"),
        ([b"\x78\x00\x10\x67"], "overruns"),
        ([b"\x78\x00"], "2-byte NAL size"),
        ([b"\x79\x00\x01\x67"], "got 25"),
        ([b"\x60"], "got 0"),
        ([b""], "non-empty"),
        ([], "at least one"),
        ([b"\x7c"], "at least 3"),
    ],
)
def test_h264_malformed_payloads_raise_value_error(payloads: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        H264Depacketizer().depacketize(payloads)


def test_h264_keyframe_rules() -> None:
    assert is_keyframe("video/H264", b"\x65\x88\x80")
    assert is_keyframe("video/h264", SPS)
    assert not is_keyframe("video/H264", PPS)
    assert not is_keyframe("video/H264", SLICE)
    stap_with_sps = b"\x78" + len(SPS).to_bytes(2, "big") + SPS
    assert is_keyframe("H264", stap_with_sps)
    assert not is_keyframe("H264", b"\x78" + len(PPS).to_bytes(2, "big") + PPS)
    assert not is_keyframe("H264", b"\x78\x00\x40" + SPS)  # size runs past the end
    assert is_keyframe("H264", b"\x7c\x85\x88")
    assert not is_keyframe("H264", b"\x7c\x05\x88")  # FU-A continuation of an IDR
    assert not is_keyframe("H264", b"\x7c\x81\x88")  # FU-A start of a non-IDR slice
    assert not is_keyframe("H264", b"\x7c")
    assert not is_keyframe("H264", b"")
    assert is_keyframe("H264", memoryview(b"\x00\x7c\x85\x88")[1:])


def test_factories_and_unknown_codecs() -> None:
    assert isinstance(create_packetizer("video/VP8"), Vp8Packetizer)
    assert isinstance(create_packetizer("h264", 500), H264Packetizer)
    assert isinstance(create_depacketizer("H264"), H264Depacketizer)
    with pytest.raises(ValueError, match="VP8"):
        create_packetizer("opus")
    with pytest.raises(ValueError, match="max_payload_size"):
        Vp8Packetizer(4)
    with pytest.raises(ValueError, match="NAL units"):
        H264Packetizer().packetize(b"\x00\x00\x00\x01\x09\xf0")


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=64), mime=st.sampled_from(["video/VP8", "video/H264", "video/AV1", "vp8"]))
def test_payload_code_never_crashes_on_garbage(payload: bytes, mime: str) -> None:
    assert is_keyframe(mime, payload) in (True, False)
    for depacketizer in (Vp8Depacketizer(), H264Depacketizer()):
        depacketizer.is_frame_start(payload)
        depacketizer.is_keyframe(payload)
        try:
            depacketizer.depacketize([payload, payload])
        except ValueError:
            pass
    try:
        parse_vp8_descriptor(payload)
    except ValueError:
        pass
    split_annexb(payload)


@settings(max_examples=100, deadline=None)
@given(nals=st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=6), mtu=st.integers(20, 1500))
def test_h264_packetize_depacketize_round_trip(nals: list[bytes], mtu: int) -> None:
    # Start codes inside a NAL cannot occur in real streams (emulation prevention); keep inputs valid.
    cleaned = [bytes([0x41 | (nal[0] & 0x60)]) + nal[1:].replace(b"\x00\x00", b"\x00\x03") for nal in nals]
    cleaned = [nal.rstrip(b"\x00") or b"\x41" for nal in cleaned]
    payloads = H264Packetizer(mtu).packetize(annexb(*cleaned))
    assert all(len(p) <= mtu for p in payloads)
    assert split_annexb(H264Depacketizer().depacketize(payloads)) == cleaned


@settings(max_examples=100, deadline=None)
@given(frame=st.binary(min_size=1, max_size=5000), mtu=st.integers(5, 1500))
def test_vp8_packetize_depacketize_round_trip(frame: bytes, mtu: int) -> None:
    payloads = Vp8Packetizer(mtu).packetize(frame)
    assert all(len(p) <= mtu for p in payloads)
    assert Vp8Depacketizer().depacketize(payloads) == frame
