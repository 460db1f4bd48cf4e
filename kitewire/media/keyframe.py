"""Keyframe detection on one RTP payload; cheap enough for the SFU hot path."""

from __future__ import annotations


def is_keyframe(mime_type: str, payload: bytes) -> bool:
    """True when this single RTP payload starts (VP8) or carries (H264) a keyframe.

    ``mime_type`` is "video/VP8", "video/H264" (any case; the bare codec name
    works too). VP8: S=1, partition 0 and the frame header's P bit is 0.
    H264: an IDR slice or SPS as a single NAL, inside a STAP-A, or as the
    start fragment of an FU-A. Unknown codec or truncated payload -> False.
    """
    raise NotImplementedError
