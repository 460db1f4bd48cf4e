"""The VP9 payload descriptor (RFC 9628) and the key frame bit of the VP9 bitstream:
what the SFU, the keyframe rules and the VP9 payload format read.

One walk serves all three: the depacketizer (``header_size``: where the
bitstream starts), keyframe detection (B, P, the spatial layer) and the SFU's
rewriter, which renumbers PictureID and TL0PICIDX in place exactly as for VP8
(their offsets, and ``end``: where the renumbered fields stop, 0 when there
are none), so a subscriber switched between simulcast layers sees one
continuous picture numbering.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from kitewire.media.vp8_descriptor import Payload

__all__ = ["Payload", "Vp9Descriptor", "parse_vp9_descriptor", "read_vp9_descriptor", "vp9_bitstream_is_keyframe"]


class Vp9Descriptor(NamedTuple):
    """The fields of one VP9 payload descriptor that receivers and the SFU use."""

    header_size: int
    picture_id: int | None
    begins_frame: bool  # B
    ends_frame: bool  # E
    inter_picture: bool  # P
    flexible: bool  # F
    spatial_id: int
    temporal_id: int
    tl0_pic_idx: int | None
    width: int | None  # from a scalability structure, top spatial layer
    height: int | None
    picture_id_offset: int  # -1 when absent
    picture_id_size: int  # 0 (absent), 1 (7-bit) or 2 (15-bit) bytes
    tl0_pic_idx_offset: int  # -1 when absent
    end: int


def read_vp9_descriptor(payload: Payload) -> Vp9Descriptor | None:
    """The descriptor of ``payload``, or None when it is cut short or inconsistent."""
    size = len(payload)
    if size < 1:
        return None
    first = payload[0]
    has_picture_id, inter, has_layers, flexible = (
        bool(first & 0x80),
        bool(first & 0x40),
        bool(first & 0x20),
        bool(first & 0x10),
    )
    offset = 1
    picture_id = None
    pid_offset, pid_size = -1, 0
    if has_picture_id:
        if offset >= size:
            return None
        pid_offset = offset
        if payload[offset] & 0x80:
            if offset + 1 >= size:
                return None
            picture_id = ((payload[offset] & 0x7F) << 8) | payload[offset + 1]
            pid_size = 2
        else:
            picture_id = payload[offset] & 0x7F
            pid_size = 1
        offset += pid_size
    spatial_id = temporal_id = 0
    tl0_pic_idx = None
    tl0_offset = -1
    if has_layers:
        if offset >= size:
            return None
        layer = payload[offset]
        temporal_id, spatial_id = layer >> 5, (layer >> 1) & 0x07
        offset += 1
        if not flexible:
            if offset >= size:
                return None
            tl0_pic_idx, tl0_offset = payload[offset], offset
            offset += 1
    if flexible and inter:
        for _ in range(3):
            if offset >= size:
                return None
            more = payload[offset] & 0x01
            offset += 1
            if not more:
                break
        else:
            return None  # a fourth reference: not allowed
    width = height = None
    if first & 0x02:
        if offset >= size:
            return None
        structure = payload[offset]
        offset += 1
        layers = (structure >> 5) + 1
        if structure & 0x10:
            if offset + 4 * layers > size:
                return None
            width, height = struct.unpack_from("!HH", payload, offset + 4 * (layers - 1))
            offset += 4 * layers
        if structure & 0x08:
            if offset >= size:
                return None
            pictures = payload[offset]
            offset += 1
            for _ in range(pictures):
                if offset >= size:
                    return None
                references = (payload[offset] >> 2) & 0x03
                offset += 1 + references
            if offset > size:
                return None
    end = tl0_offset + 1 if tl0_offset >= 0 else (pid_offset + pid_size if pid_size else 0)
    return Vp9Descriptor(
        offset, picture_id, bool(first & 0x08), bool(first & 0x04), inter, flexible, spatial_id, temporal_id,
        tl0_pic_idx, width, height, pid_offset, pid_size, tl0_offset, end,
    )  # fmt: skip


def parse_vp9_descriptor(payload: Payload) -> Vp9Descriptor:
    """Like :func:`read_vp9_descriptor`, raising ``ValueError`` on a malformed descriptor."""
    descriptor = read_vp9_descriptor(payload)
    if descriptor is None:
        raise ValueError(f"VP9 payload descriptor: expected a complete descriptor, got {bytes(payload[:16]).hex()}")
    return descriptor


def vp9_bitstream_is_keyframe(data: Payload) -> bool:
    """True when a VP9 frame's uncompressed header says key frame (profiles 0-2)."""
    if len(data) < 1:
        return False
    first = data[0]
    if first & 0xC0 != 0x80:  # frame_marker
        return False
    if first & 0x30 == 0x30:  # profile 3: a reserved bit comes first
        return not first & 0x04 and not first & 0x02
    # show_existing_frame (bit 3) shows an old picture; frame_type (bit 2) 0 = key
    return not first & 0x08 and not first & 0x04
