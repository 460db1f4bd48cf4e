"""VP8 RTP payload format (RFC 7741): payload descriptor, packetizer, depacketizer."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """Parsed VP8 payload descriptor of one RTP payload.

    ``picture_id``, ``tl0_pic_idx``, ``tid``, ``layer_sync`` and ``key_idx`` are
    ``None`` when absent. ``header_size`` is the descriptor's length in bytes;
    the VP8 bitstream starts right after it.
    """

    non_reference: bool
    start_of_partition: bool
    partition_id: int
    picture_id: int | None
    picture_id_15bit: bool
    tl0_pic_idx: int | None
    tid: int | None
    layer_sync: bool
    key_idx: int | None
    header_size: int


def parse_vp8_descriptor(payload: bytes) -> Vp8Descriptor:
    """Parse the RFC 7741 descriptor at the start of ``payload``.

    Raises ``ValueError`` if the payload is shorter than its descriptor says.
    """
    raise NotImplementedError


class Vp8Packetizer:
    """Splits VP8 frames into RTP payloads with a 15-bit PictureID (as libwebrtc does)."""

    def __init__(self, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE, picture_id: int | None = None) -> None:
        """``picture_id``: first PictureID to use (random 15-bit value when None)."""
        self.max_payload_size = max_payload_size
        self.picture_id = random.randrange(0x8000) if picture_id is None else picture_id & 0x7FFF

    def packetize(self, frame: bytes) -> list[bytes]:
        """RTP payloads for one VP8 frame; PictureID advances by one per call."""
        raise NotImplementedError


class Vp8Depacketizer:
    """Strips VP8 payload descriptors and joins the partitions of one frame."""

    def is_frame_start(self, payload: bytes) -> bool:
        """True for S=1, PID=0 (first packet of a frame)."""
        raise NotImplementedError

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` starts a VP8 key frame."""
        raise NotImplementedError

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """VP8 bitstream of one frame; raises ``ValueError`` on a malformed payload."""
        raise NotImplementedError
