"""VP8 RTP payload format (RFC 7741): payload descriptor, packetizer, depacketizer."""

from __future__ import annotations

import random
from collections.abc import Sequence

from kitewire.media.keyframe import vp8_is_keyframe
from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE
from kitewire.media.vp8_descriptor import Vp8Descriptor, parse_vp8_descriptor

__all__ = ["Vp8Depacketizer", "Vp8Descriptor", "Vp8Packetizer", "parse_vp8_descriptor"]

# Our own descriptor: X=1 and I=1 with a 15-bit PictureID, 4 bytes in all.
_DESCRIPTOR_SIZE = 4


def _split_evenly(length: int, max_chunk: int) -> list[tuple[int, int]]:
    """(start, end) ranges covering ``length`` bytes in near-equal chunks of at most ``max_chunk``.

    Equal sizes instead of full packets plus a runt keep the per-packet loss
    cost uniform, as libwebrtc does.
    """
    if length <= 0:
        return [(0, 0)]
    count = -(-length // max_chunk)
    base, extra = divmod(length, count)
    ranges: list[tuple[int, int]] = []
    start = 0
    for index in range(count):
        end = start + base + (1 if index < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges


class Vp8Packetizer:
    """Splits VP8 frames into RTP payloads with a 15-bit PictureID (as libwebrtc does)."""

    def __init__(self, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE, picture_id: int | None = None) -> None:
        """``picture_id``: first PictureID to use (random 15-bit value when None)."""
        if max_payload_size <= _DESCRIPTOR_SIZE:
            raise ValueError(f"VP8 packetizer: expected max_payload_size > {_DESCRIPTOR_SIZE}, got {max_payload_size}")
        self.max_payload_size = max_payload_size
        self.picture_id = random.randrange(0x8000) if picture_id is None else picture_id & 0x7FFF

    def packetize(self, frame: bytes, *, non_reference: bool = False) -> list[bytes]:
        """RTP payloads for one VP8 frame; PictureID advances by one per call.

        ``non_reference`` sets the N bit: no later frame predicts from this one,
        so a receiver may drop it without waiting for a keyframe.
        """
        if not frame:
            raise ValueError("VP8 packetizer: expected a non-empty encoded frame, got 0 bytes")
        picture_id = self.picture_id
        self.picture_id = (picture_id + 1) & 0x7FFF
        pid_hi = 0x80 | (picture_id >> 8)
        pid_lo = picture_id & 0xFF
        view = memoryview(frame)
        payloads: list[bytes] = []
        for start, end in _split_evenly(len(frame), self.max_payload_size - _DESCRIPTOR_SIZE):
            first = (0x90 if start == 0 else 0x80) | (0x20 if non_reference else 0)
            payloads.append(bytes((first, 0x80, pid_hi, pid_lo)) + view[start:end])
        return payloads


class Vp8Depacketizer:
    """Strips VP8 payload descriptors and joins the partitions of one frame."""

    def is_frame_start(self, payload: bytes) -> bool:
        """True for S=1, PID=0 (first packet of a frame)."""
        return len(payload) >= 1 and (payload[0] & 0x17) == 0x10

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` starts a VP8 key frame."""
        return vp8_is_keyframe(payload)

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """VP8 bitstream of one frame; raises ``ValueError`` on a malformed payload."""
        if not payloads:
            raise ValueError("VP8 depacketizer: expected at least one payload, got none")
        if not self.is_frame_start(payloads[0]):
            raise ValueError("VP8 depacketizer: expected the first payload to have S=1 and PID=0")
        parts = []
        for payload in payloads:
            offset = parse_vp8_descriptor(payload).header_size
            parts.append(memoryview(payload)[offset:])
        data = b"".join(parts)
        if not data:
            raise ValueError("VP8 depacketizer: expected VP8 bitstream after the descriptors, got 0 bytes")
        return data
