"""Codec-neutral packetizer/depacketizer interfaces and factories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

DEFAULT_MAX_PAYLOAD_SIZE = 1200
"""Largest RTP payload we produce: leaves room for RTP header, extensions and
SRTP tag inside a 1280-byte IPv6-safe datagram."""


class Packetizer(Protocol):
    """Splits one encoded frame into RTP payloads (in send order)."""

    max_payload_size: int

    def packetize(self, frame: bytes) -> list[bytes]:
        """Return RTP payloads for one encoded frame; the last one gets the marker bit."""
        ...


class Depacketizer(Protocol):
    """Rebuilds one encoded frame from the RTP payloads that carried it."""

    def is_frame_start(self, payload: bytes) -> bool:
        """True when ``payload`` is the first packet of a frame."""
        ...

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` shows the frame it belongs to is a keyframe."""
        ...

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """Concatenate the codec bitstream of one frame's payloads (in seq order).

        Raises ``ValueError`` on a malformed payload.
        """
        ...


def create_packetizer(codec: str, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> Packetizer:
    """Packetizer for ``codec`` ("VP8"/"H264", any case, optional "video/" prefix)."""
    from kitewire.media.codecs import normalize_codec
    from kitewire.media.h264 import H264Packetizer
    from kitewire.media.vp8 import Vp8Packetizer

    name = normalize_codec(codec)
    if name == "VP8":
        return Vp8Packetizer(max_payload_size)
    return H264Packetizer(max_payload_size)


def create_depacketizer(codec: str) -> Depacketizer:
    """Depacketizer for ``codec`` ("VP8"/"H264", any case, optional "video/" prefix)."""
    from kitewire.media.codecs import normalize_codec
    from kitewire.media.h264 import H264Depacketizer
    from kitewire.media.vp8 import Vp8Depacketizer

    name = normalize_codec(codec)
    if name == "VP8":
        return Vp8Depacketizer()
    return H264Depacketizer()
