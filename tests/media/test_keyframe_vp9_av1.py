"""Keyframe detection on VP9 (RFC 9628) and AV1 (AV1 RTP specification) payloads.

The descriptors are written out bit by bit from the specifications; the
end-to-end check with libwebrtc's own packets is tests/server/test_sdk_svc_codecs.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kitewire.media.keyframe import av1_is_keyframe, is_keyframe, vp9_is_keyframe

# VP9 descriptor first byte: I P L F B E V Z
_I, _P, _L, _F, _B, _E, _V = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02


# The start of a VP9 key frame's uncompressed header: frame_marker 2, profile 0,
# show_existing_frame 0, frame_type 0 (key), then the sync code.
_KEY_FRAME_HEADER = b"\x82\x49\x83\x42"


def _vp9(first: int, *rest: int) -> bytes:
    """A VP9 payload: descriptor fields as given (plus a one-layer scalability
    structure when V is set), then the start of a key frame."""
    structure = b"\x00" if first & _V else b""
    return bytes([first, *rest]) + structure + _KEY_FRAME_HEADER + b"\x00" * 8


def test_vp9_start_of_an_intra_picture_is_a_keyframe() -> None:
    # 15-bit picture id, no layer indices (a plain, non-SVC stream).
    assert vp9_is_keyframe(_vp9(_I | _B | _V, 0x80 | 0x12, 0x34))
    # 7-bit picture id.
    assert vp9_is_keyframe(_vp9(_I | _B, 0x05))
    # Layer indices in non-flexible mode: TID=0 U=0 SID=0 D=0, then TL0PICIDX.
    assert vp9_is_keyframe(_vp9(_I | _L | _B | _V, 0x80, 0x01, 0x00, 0x07))


def test_vp9_other_packets_are_not_keyframes() -> None:
    assert not vp9_is_keyframe(_vp9(_I | _P | _B, 0x80, 0x01))  # inter-picture predicted
    assert not vp9_is_keyframe(_vp9(_I | _E, 0x80, 0x01))  # the middle or end of a frame (B=0)
    # Spatial layer 1 of the key picture (SID=1 in TID|U|SID|D): a layer above the base.
    assert not vp9_is_keyframe(_vp9(_I | _L | _B, 0x80, 0x01, 0b000_0_001_1, 0x07))
    assert not vp9_is_keyframe(b"")
    assert not vp9_is_keyframe(bytes([_I | _B]))  # picture id announced, missing
    assert not vp9_is_keyframe(bytes([_I | _L | _B, 0x05]))  # layer indices announced, missing


def test_av1_keyframes_by_new_sequence_or_sequence_header() -> None:
    # Z=0 Y=0 W=1 N=1: one OBU, a new coded video sequence starts.
    assert av1_is_keyframe(bytes([0x18, 0x0A, 0x0B, 0x00]))
    # N=0, W=1: the only OBU is a sequence header (type 1: header byte 0b0_0001_0_1_0 = 0x0A).
    assert av1_is_keyframe(bytes([0x10, 0x0A, 0x0B, 0x00]))
    # N=0, W=0: elements carry a leb128 size; the first is a sequence header.
    assert av1_is_keyframe(bytes([0x00, 0x03, 0x0A, 0x0B, 0x00]))
    # A two-byte leb128 size before the sequence header.
    assert av1_is_keyframe(bytes([0x00, 0x81, 0x01, 0x0A]) + b"\x00" * 129)


def test_av1_other_packets_are_not_keyframes() -> None:
    # A frame OBU (type 6: 0b0_0110_0_1_0 = 0x32) without N.
    assert not av1_is_keyframe(bytes([0x10, 0x32, 0x00]))
    # A continuation (Z=1) whose bytes look like a sequence header are the middle of another OBU.
    assert not av1_is_keyframe(bytes([0x90, 0x0A, 0x00]))
    assert not av1_is_keyframe(b"\x18")
    assert not av1_is_keyframe(bytes([0x00, 0x80]))  # a size that never ends


def test_is_keyframe_dispatches_by_mime_type() -> None:
    vp9_key = _vp9(_I | _B, 0x05)
    av1_key = bytes([0x18, 0x0A])
    for mime in ("video/VP9", "VP9", "vp9", "video/vp9", " Video/VP9 "):
        assert is_keyframe(mime, vp9_key)
    for mime in ("video/AV1", "AV1", "av1"):
        assert is_keyframe(mime, av1_key)
    assert not is_keyframe("video/VP9", _vp9(_P | _B))
    assert is_keyframe("video/AV1", memoryview(av1_key))


@given(st.binary(max_size=40))
def test_any_bytes_give_an_answer_not_an_error(payload: bytes) -> None:
    for mime in ("video/VP9", "video/AV1"):
        assert is_keyframe(mime, payload) in (True, False)
