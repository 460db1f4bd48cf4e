"""The VP8 RTP payload descriptor (RFC 7741 section 4.2): its fields and where they sit.

One walk over the descriptor serves everything that reads it: the
depacketizer (where the bitstream starts), keyframe detection (where the
frame tag is) and the SFU's rewriter (the byte offsets of PictureID and
TL0PICIDX, which it renumbers in place).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Payload", "Vp8Descriptor", "parse_vp8_descriptor", "read_vp8_descriptor"]

Payload = bytes | bytearray | memoryview
"""Any bytes-like payload; a memoryview into a receive buffer is read without copying."""


class Vp8Descriptor(NamedTuple):
    """The descriptor at the start of one VP8 RTP payload.

    Optional fields are ``None`` when absent; their offsets are then -1.
    ``picture_id_size`` is 0 (absent), 1 (7-bit) or 2 (15-bit) bytes.
    ``header_size`` is the descriptor's length: the VP8 bitstream starts there.
    ``end`` is where the renumbered fields stop (0 when there are none), so a
    rewritten payload is the patched ``payload[:end]`` followed by the rest.
    A named tuple, not a dataclass: the SFU parses one per packet, and a
    tuple is built several times faster than a frozen dataclass.
    """

    non_reference: bool
    start_of_partition: bool
    partition_id: int
    picture_id: int | None
    picture_id_offset: int
    picture_id_size: int
    tl0_pic_idx: int | None
    tl0_pic_idx_offset: int
    tid: int | None
    layer_sync: bool
    key_idx: int | None
    header_size: int
    end: int

    @property
    def picture_id_15bit(self) -> bool:
        """True when the PictureID is the 15-bit (M=1) form."""
        return self.picture_id_size == 2


def _walk(payload: Payload) -> Vp8Descriptor | str:
    """The descriptor, or a sentence saying what a truncated payload lacks."""
    size = len(payload)
    if size < 1:
        return "expected at least 1 byte of payload descriptor, got 0"
    first = payload[0]
    offset = 1
    picture_id: int | None = None
    pid_offset, pid_size = -1, 0
    tl0: int | None = None
    tl0_offset = -1
    tid: int | None = None
    layer_sync = False
    key_idx: int | None = None
    if first & 0x80:
        if size < 2:
            return f"X bit set, expected an extension byte, got {size} byte(s)"
        ext = payload[1]
        offset = 2
        if ext & 0x80:
            if size <= offset:
                return f"I bit set, expected a PictureID, got {size} byte(s)"
            if payload[offset] & 0x80:
                if size < offset + 2:
                    return f"expected a 15-bit PictureID, got {size} byte(s)"
                picture_id = ((payload[offset] & 0x7F) << 8) | payload[offset + 1]
                pid_offset, pid_size = offset, 2
            else:
                picture_id = payload[offset] & 0x7F
                pid_offset, pid_size = offset, 1
            offset += pid_size
        if ext & 0x40:
            if size <= offset:
                return f"L bit set, expected TL0PICIDX, got {size} byte(s)"
            tl0, tl0_offset = payload[offset], offset
            offset += 1
        if ext & 0x30:
            if size <= offset:
                return f"T/K bit set, expected TID/KEYIDX byte, got {size} byte(s)"
            byte = payload[offset]
            if ext & 0x20:
                tid = byte >> 6
                layer_sync = bool(byte & 0x20)
            if ext & 0x10:
                key_idx = byte & 0x1F
            offset += 1
    end = tl0_offset + 1 if tl0_offset >= 0 else (pid_offset + pid_size if pid_size else 0)
    return Vp8Descriptor(
        bool(first & 0x20),
        bool(first & 0x10),
        first & 0x07,
        picture_id,
        pid_offset,
        pid_size,
        tl0,
        tl0_offset,
        tid,
        layer_sync,
        key_idx,
        offset,
        end,
    )


def parse_vp8_descriptor(payload: Payload) -> Vp8Descriptor:
    """The descriptor at the start of ``payload``; ``ValueError`` if the payload is shorter than it says."""
    result = _walk(payload)
    if isinstance(result, str):
        raise ValueError(f"VP8 payload: {result}")
    return result


def read_vp8_descriptor(payload: Payload) -> Vp8Descriptor | None:
    """The descriptor at the start of ``payload``, or None when it is truncated (for per-packet paths)."""
    result = _walk(payload)
    return None if isinstance(result, str) else result
