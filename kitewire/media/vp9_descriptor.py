"""The VP9 RTP payload descriptor (RFC 9628 section 4.2): the fields up to TL0PICIDX.

One walk serves keyframe detection (B, P and the spatial layer) and the SFU's
rewriter, which renumbers PictureID and TL0PICIDX in place exactly as for VP8,
so a subscriber switched between simulcast layers sees one continuous picture
numbering. What follows (reference indices, the scalability structure) holds
no absolute numbers and is passed on untouched.
"""

from __future__ import annotations

from typing import NamedTuple

from kitewire.media.vp8_descriptor import Payload

__all__ = ["Vp9Descriptor", "read_vp9_descriptor"]


class Vp9Descriptor(NamedTuple):
    """The start of one VP9 RTP payload's descriptor.

    Optional fields are ``None`` when absent, their offsets -1;
    ``picture_id_size`` is 0 (absent), 1 (7-bit) or 2 (15-bit) bytes. ``end``
    is where the renumbered fields stop (0 when there are none).
    """

    inter_picture: bool
    flexible: bool
    start_of_frame: bool
    end_of_frame: bool
    picture_id: int | None
    picture_id_offset: int
    picture_id_size: int
    temporal_id: int | None
    spatial_id: int | None
    tl0_pic_idx: int | None
    tl0_pic_idx_offset: int
    end: int


def read_vp9_descriptor(payload: Payload) -> Vp9Descriptor | None:
    """The descriptor at the start of ``payload``, or None when it is shorter than it says."""
    size = len(payload)
    if size < 1:
        return None
    first = payload[0]  # I P L F B E V Z
    offset = 1
    picture_id: int | None = None
    pid_offset, pid_size = -1, 0
    if first & 0x80:
        if offset >= size:
            return None
        if payload[offset] & 0x80:
            if offset + 2 > size:
                return None
            picture_id = ((payload[offset] & 0x7F) << 8) | payload[offset + 1]
            pid_offset, pid_size = offset, 2
        else:
            picture_id = payload[offset] & 0x7F
            pid_offset, pid_size = offset, 1
        offset += pid_size
    temporal_id: int | None = None
    spatial_id: int | None = None
    tl0: int | None = None
    tl0_offset = -1
    flexible = bool(first & 0x10)
    if first & 0x20:
        if offset >= size:
            return None
        layers = payload[offset]  # TID(3) U SID(3) D
        temporal_id, spatial_id = layers >> 5, (layers >> 1) & 0x07
        offset += 1
        if not flexible:
            if offset >= size:
                return None
            tl0, tl0_offset = payload[offset], offset
    end = tl0_offset + 1 if tl0_offset >= 0 else (pid_offset + pid_size if pid_size else 0)
    return Vp9Descriptor(
        bool(first & 0x40),
        flexible,
        bool(first & 0x08),
        bool(first & 0x04),
        picture_id,
        pid_offset,
        pid_size,
        temporal_id,
        spatial_id,
        tl0,
        tl0_offset,
        end,
    )
