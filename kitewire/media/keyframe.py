"""Keyframe detection on one RTP payload; cheap enough for the SFU hot path."""

from __future__ import annotations

_VP8 = 1
_H264 = 2

# The spellings callers actually use, so the hot path avoids str.lower().
_CODEC_BY_MIME: dict[str, int] = {
    "video/VP8": _VP8,
    "video/vp8": _VP8,
    "VP8": _VP8,
    "vp8": _VP8,
    "video/H264": _H264,
    "video/h264": _H264,
    "H264": _H264,
    "h264": _H264,
}


def _codec_id(mime_type: str) -> int:
    found = _CODEC_BY_MIME.get(mime_type)
    if found is not None:
        return found
    lowered = mime_type.lower()
    if lowered.startswith("video/"):
        lowered = lowered[6:]
    if lowered == "vp8":
        return _VP8
    if lowered == "h264":
        return _H264
    return 0


def vp8_is_keyframe(payload: bytes) -> bool:
    """VP8 rule of ``is_keyframe`` (RFC 7741 descriptor, then the frame tag's P bit)."""
    size = len(payload)
    if size < 1:
        return False
    first = payload[0]
    # Only the packet holding the beginning of partition 0 carries the frame tag.
    if not first & 0x10 or first & 0x07:
        return False
    offset = 1
    if first & 0x80:
        if size < 2:
            return False
        ext = payload[1]
        offset = 2
        if ext & 0x80:
            if size <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:
            offset += 1
        if ext & 0x30:
            offset += 1
    if size <= offset:
        return False
    # Frame tag: the lowest bit of its first byte is 0 for key frames.
    return not payload[offset] & 0x01


def h264_is_keyframe(payload: bytes) -> bool:
    """H264 rule of ``is_keyframe`` (IDR or SPS as single NAL, in STAP-A, or FU-A start)."""
    size = len(payload)
    if size < 1:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == 5 or nal_type == 7:
        return True
    if nal_type == 24:
        offset = 1
        while offset + 2 < size:
            nal_size = (payload[offset] << 8) | payload[offset + 1]
            offset += 2
            if nal_size == 0 or offset + nal_size > size:
                return False
            inner = payload[offset] & 0x1F
            if inner == 5 or inner == 7:
                return True
            offset += nal_size
        return False
    if nal_type == 28:
        if size < 2:
            return False
        fu_header = payload[1]
        return bool(fu_header & 0x80) and (fu_header & 0x1F) in (5, 7)
    return False


def is_keyframe(mime_type: str, payload: bytes) -> bool:
    """True when this single RTP payload starts (VP8) or carries (H264) a keyframe.

    ``mime_type`` is "video/VP8", "video/H264" (any case; the bare codec name
    works too). VP8: S=1, partition 0 and the frame header's P bit is 0.
    H264: an IDR slice or SPS as a single NAL, inside a STAP-A, or as the
    start fragment of an FU-A. Unknown codec or truncated payload -> False.
    """
    codec = _codec_id(mime_type)
    if codec == _VP8:
        return vp8_is_keyframe(payload)
    if codec == _H264:
        return h264_is_keyframe(payload)
    return False
