"""VP9 RTP payload format (RFC 9628): payload descriptor, packetizer, depacketizer.

Descriptor, first byte ``I P L F B E V Z``: I a picture id follows (7 or 15 bits, M
bit), P the frame references another picture, L layer indices follow (TID, U, SID,
D; in non-flexible mode a TL0PICIDX byte too), F flexible mode (then P=1 brings up to
three reference P_DIFF bytes), B/E the first/last packet of a layer frame, V a
scalability structure follows (spatial layer count, optional sizes and picture
group), Z the frame is not used for inter-layer prediction.

We send one spatial and one temporal layer in flexible mode: every packet carries
the 15-bit picture id and layer indices, an inter frame names the previous picture
(P_DIFF 1), and a keyframe's first packet carries the scalability structure with its
size, as libwebrtc's depacketizer wants to see it.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

from kitewire.media.keyframe import vp9_is_keyframe
from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE
from kitewire.media.vp8 import _split_evenly
from kitewire.media.vp9_descriptor import (
    Vp9Descriptor,
    parse_vp9_descriptor,
    read_vp9_descriptor,
    vp9_bitstream_is_keyframe,
)

__all__ = [
    "Vp9Depacketizer",
    "Vp9Descriptor",
    "Vp9Packetizer",
    "parse_vp9_descriptor",
    "read_vp9_descriptor",
    "vp9_bitstream_is_keyframe",
]


class Vp9Packetizer:
    """Splits VP9 frames into RTP payloads (flexible mode, one layer, 15-bit picture id)."""

    def __init__(self, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE, picture_id: int | None = None) -> None:
        if max_payload_size <= 16:
            raise ValueError(f"VP9 packetizer: expected max_payload_size > 16, got {max_payload_size}")
        self.max_payload_size = max_payload_size
        self.picture_id = random.randrange(0x8000) if picture_id is None else picture_id & 0x7FFF
        self.width = 0
        self.height = 0
        """Size announced in a keyframe's scalability structure (set by the encoder)."""

    def packetize(self, frame: bytes) -> list[bytes]:
        """RTP payloads for one VP9 frame; the picture id advances by one per call."""
        if not frame:
            raise ValueError("VP9 packetizer: expected a non-empty encoded frame, got 0 bytes")
        picture_id = self.picture_id
        self.picture_id = (picture_id + 1) & 0x7FFF
        key = vp9_bitstream_is_keyframe(frame)
        # I=1, L=1, F=1; P=1 with one reference on inter frames
        common = 0xB0 | (0x00 if key else 0x40)
        ids = bytes((0x80 | (picture_id >> 8), picture_id & 0xFF, 0x00))
        reference = b"" if key else b"\x02"  # P_DIFF 1, N 0
        structure = b""
        if key:
            # one spatial layer (N_S 0), its size (Y), no picture group
            structure = bytes((0x10,)) + struct.pack("!HH", self.width & 0xFFFF, self.height & 0xFFFF)
        head = len(ids) + len(reference) + 1
        first_room = self.max_payload_size - head - len(structure)
        room = self.max_payload_size - head
        payloads: list[bytes] = []
        view = memoryview(frame)
        # the first packet also carries the structure: size chunks for the smaller room
        chunks = _split_evenly(len(frame), min(first_room, room))
        for index, (start, end) in enumerate(chunks):
            flags = common | (0x08 if index == 0 else 0) | (0x04 if index == len(chunks) - 1 else 0)
            extra = b""
            if index == 0 and key:
                flags |= 0x02
                extra = structure
            payloads.append(bytes((flags,)) + ids + reference + extra + view[start:end])
        return payloads


def _superframe(frames: list[bytes]) -> bytes:
    """Frames of one picture (its spatial layers) joined with a VP9 superframe index,
    so a decoder fed one buffer decodes every layer."""
    largest = max(len(frame) for frame in frames)
    size_bytes = 1 if largest < 1 << 8 else 2 if largest < 1 << 16 else 3 if largest < 1 << 24 else 4
    marker = 0xC0 | ((size_bytes - 1) << 3) | (len(frames) - 1)
    index = (
        bytes((marker,)) + b"".join(len(frame).to_bytes(size_bytes, "little") for frame in frames) + bytes((marker,))
    )
    return b"".join(frames) + index


class Vp9Depacketizer:
    """Strips VP9 descriptors; the layer frames of one picture become one superframe."""

    def is_frame_start(self, payload: bytes) -> bool:
        """True for the first packet of a picture (B=1, lowest spatial layer)."""
        descriptor = read_vp9_descriptor(payload)
        return descriptor is not None and descriptor.begins_frame and descriptor.spatial_id == 0

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` starts a VP9 key frame."""
        return vp9_is_keyframe(payload)

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """VP9 bitstream of one picture; raises ``ValueError`` on a malformed payload."""
        if not payloads:
            raise ValueError("VP9 depacketizer: expected at least one payload, got none")
        frames: list[bytes] = []
        parts: list[memoryview] = []
        for position, payload in enumerate(payloads):
            descriptor = parse_vp9_descriptor(payload)
            if position == 0 and not descriptor.begins_frame:
                raise ValueError("VP9 depacketizer: expected the first payload to have B=1")
            if descriptor.begins_frame and parts:
                frames.append(b"".join(parts))
                parts = []
            parts.append(memoryview(payload)[descriptor.header_size :])
        frames.append(b"".join(parts))
        frames = [frame for frame in frames if frame]
        if not frames:
            raise ValueError("VP9 depacketizer: expected VP9 bitstream after the descriptors, got 0 bytes")
        return frames[0] if len(frames) == 1 else _superframe(frames)
