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
    """Packetizer for ``codec`` ("VP8"/"H264"/"VP9"/"AV1"/"H265", any case, optional "video/" prefix)."""
    from kitewire.media.av1 import Av1Packetizer
    from kitewire.media.codecs import normalize_codec
    from kitewire.media.h264 import H264Packetizer
    from kitewire.media.h265 import H265Packetizer
    from kitewire.media.vp8 import Vp8Packetizer
    from kitewire.media.vp9 import Vp9Packetizer

    name = normalize_codec(codec)
    if name == "VP8":
        return Vp8Packetizer(max_payload_size)
    if name == "VP9":
        return Vp9Packetizer(max_payload_size)
    if name == "AV1":
        return Av1Packetizer(max_payload_size)
    if name == "H264":
        return H264Packetizer(max_payload_size)
    return H265Packetizer(max_payload_size)


def create_depacketizer(codec: str) -> Depacketizer:
    """Depacketizer for ``codec`` ("VP8"/"H264"/"VP9"/"AV1"/"H265", any case, optional "video/" prefix)."""
    from kitewire.media.av1 import Av1Depacketizer
    from kitewire.media.codecs import normalize_codec
    from kitewire.media.h264 import H264Depacketizer
    from kitewire.media.h265 import H265Depacketizer
    from kitewire.media.vp8 import Vp8Depacketizer
    from kitewire.media.vp9 import Vp9Depacketizer

    depacketizers: dict[str, type[Depacketizer]] = {
        "VP8": Vp8Depacketizer,
        "H264": H264Depacketizer,
        "VP9": Vp9Depacketizer,
        "AV1": Av1Depacketizer,
        "H265": H265Depacketizer,
    }
    return depacketizers[normalize_codec(codec)]()
