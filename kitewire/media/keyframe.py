"""Keyframe detection on one RTP payload; cheap enough for the SFU hot path."""

from __future__ import annotations

from collections.abc import Callable

from kitewire.media.av1_obu import OBU_SEQUENCE_HEADER, read_leb128
from kitewire.media.vp8_descriptor import Payload, read_vp8_descriptor
from kitewire.media.vp9_descriptor import read_vp9_descriptor, vp9_bitstream_is_keyframe


def vp8_is_keyframe(payload: Payload) -> bool:
    """VP8 rule of ``is_keyframe`` (RFC 7741 descriptor, then the frame tag's P bit)."""
    size = len(payload)
    if size < 1:
        return False
    first = payload[0]
    # Only the packet holding the beginning of partition 0 carries the frame tag.
    if not first & 0x10 or first & 0x07:
        return False
    descriptor = read_vp8_descriptor(payload)
    if descriptor is None or size <= descriptor.header_size:
        return False
    offset = descriptor.header_size
    # Frame tag: the lowest bit of its first byte is 0 for key frames.
    return not payload[offset] & 0x01


def vp9_is_keyframe(payload: Payload) -> bool:
    """VP9 rule of ``is_keyframe``: the first packet of a picture's lowest spatial
    layer (B=1, SID 0), no inter-picture reference (P=0), key frame in the bitstream."""
    descriptor = read_vp9_descriptor(payload)
    if descriptor is None or not descriptor.begins_frame or descriptor.inter_picture or descriptor.spatial_id:
        return False
    return vp9_bitstream_is_keyframe(memoryview(payload)[descriptor.header_size :])


def av1_is_keyframe(payload: Payload) -> bool:
    """AV1 rule of ``is_keyframe``: the N bit, or a first (not continued) element
    that is a sequence header."""
    if len(payload) < 2:
        return False
    aggregation = payload[0]
    if aggregation & 0x08:
        return True
    if aggregation & 0x80:
        return False
    offset = 1
    if not aggregation & 0x30 or (aggregation >> 4) & 0x03 > 1:
        try:
            _, offset = read_leb128(payload, 1)
        except ValueError:
            return False
    return offset < len(payload) and (payload[offset] >> 3) & 0x0F == OBU_SEQUENCE_HEADER


def h264_is_keyframe(payload: Payload) -> bool:
    """H264 rule of ``is_keyframe`` (IDR or SPS as single NAL, in STAP-A, or FU-A start)."""
    size = len(payload)
    if size < 1:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == 5 or nal_type == 7:
        return True
    if nal_type == 24:
        return _stap_a_holds(payload, (5, 7))
    if nal_type == 28:
        if size < 2:
            return False
        fu_header = payload[1]
        return bool(fu_header & 0x80) and (fu_header & 0x1F) in (5, 7)
    return False


def h264_carries_idr(payload: Payload) -> bool:
    """True when this H264 payload carries (part of) an IDR slice: stricter than
    ``h264_is_keyframe``, which also accepts a lone SPS."""
    size = len(payload)
    if size < 1:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == 5:
        return True
    if nal_type == 28:
        return size >= 2 and payload[1] & 0x1F == 5
    if nal_type == 24:
        return _stap_a_holds(payload, (5,))
    return False


_H265_AP = 48
_H265_FU = 49
_H265_IRAP_TYPES = range(16, 24)  # BLA, IDR, CRA (and reserved IRAP types)
_H265_PARAMETER_SETS = (32, 33, 34)  # VPS, SPS, PPS


def h265_nal_type(first_byte: int) -> int:
    """The NAL unit type in the first byte of an H265 NAL unit header."""
    return (first_byte >> 1) & 0x3F


def h265_is_keyframe(payload: Payload) -> bool:
    """An H265 payload carrying an IRAP picture or its parameter sets (single NAL,
    inside an aggregation packet, or the first fragment)."""
    size = len(payload)
    if size < 3:
        return False
    nal_type = h265_nal_type(payload[0])
    if nal_type in _H265_IRAP_TYPES or nal_type in _H265_PARAMETER_SETS:
        return True
    if nal_type == _H265_FU:
        return bool(payload[2] & 0x80) and (payload[2] & 0x3F) in _H265_IRAP_TYPES
    if nal_type == _H265_AP:
        offset = 2
        while offset + 2 < size:
            nal_size = (payload[offset] << 8) | payload[offset + 1]
            offset += 2
            if nal_size == 0 or offset + nal_size > size:
                return False
            inner = h265_nal_type(payload[offset])
            if inner in _H265_IRAP_TYPES or inner in _H265_PARAMETER_SETS:
                return True
            offset += nal_size
    return False


def _stap_a_holds(payload: Payload, nal_types: tuple[int, ...]) -> bool:
    """Whether a STAP-A payload aggregates a NAL unit of one of ``nal_types``
    (False as soon as a size field runs past the payload)."""
    size = len(payload)
    offset = 1
    while offset + 2 < size:
        nal_size = (payload[offset] << 8) | payload[offset + 1]
        offset += 2
        if nal_size == 0 or offset + nal_size > size:
            return False
        if payload[offset] & 0x1F in nal_types:
            return True
        offset += nal_size
    return False


def _slow_lookup(mime_type: str) -> Callable[[Payload], bool] | None:
    lowered = mime_type.strip().lower()
    lowered = lowered.removeprefix("video/")
    if lowered == "vp8":
        return vp8_is_keyframe
    if lowered == "h264":
        return h264_is_keyframe
    if lowered == "vp9":
        return vp9_is_keyframe
    if lowered == "av1":
        return av1_is_keyframe
    if lowered in ("h265", "hevc"):
        return h265_is_keyframe
    return None


# The spellings callers actually use map straight to the check, so the hot
# path is one dict lookup and one call.
_CHECK_BY_MIME: dict[str, Callable[[Payload], bool]] = {
    spelling: check
    for check, names in (
        (vp8_is_keyframe, ("VP8", "vp8")),
        (h264_is_keyframe, ("H264", "h264")),
        (vp9_is_keyframe, ("VP9", "vp9")),
        (av1_is_keyframe, ("AV1", "av1")),
        (h265_is_keyframe, ("H265", "h265")),
    )
    for name in names
    for spelling in (name, "video/" + name)
}


def is_keyframe(mime_type: str, payload: Payload) -> bool:
    """True when this single RTP payload starts (VP8, VP9, AV1) or carries (H264) a keyframe.

    ``mime_type`` is "video/VP8", "video/H264", "video/VP9", "video/AV1",
    "video/H265" (any case; the bare codec name works too). VP8: S=1, partition 0 and the frame header's P bit is 0.
    VP9: B=1 on spatial layer 0, P=0, and the frame header says key frame. AV1
    ("video/AV1"): the aggregation header's N bit, or a sequence header first.
    H264: an IDR slice or SPS as a single NAL, inside a STAP-A, or as the
    start fragment of an FU-A. Unknown codec or truncated payload -> False.
    ``payload`` may be bytes, bytearray or a (byte-format) memoryview.
    """
    check = _CHECK_BY_MIME.get(mime_type)
    if check is None:
        check = _slow_lookup(mime_type) if isinstance(mime_type, str) else None
        if check is None:
            return False
    return check(payload)
