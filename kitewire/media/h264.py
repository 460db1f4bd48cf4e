"""H264 RTP payload format (RFC 6184, packetization-mode 1): single NAL unit,
STAP-A aggregation and FU-A fragmentation; Annex-B helpers."""

from __future__ import annotations

from typing import Sequence

from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28

ANNEXB_START_CODE = b"\x00\x00\x00\x01"


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units (without start codes) of an Annex-B byte stream.

    Data without any start code is returned as one NAL unit.
    """
    raise NotImplementedError


class H264Packetizer:
    """Packetizes Annex-B access units: small NALs (SPS/PPS) go together in a
    STAP-A, NALs larger than the payload size are split into FU-A fragments,
    everything else travels as a single NAL unit packet."""

    def __init__(self, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> None:
        self.max_payload_size = max_payload_size

    def packetize(self, frame: bytes) -> list[bytes]:
        """RTP payloads for one Annex-B access unit (AUD NALs are dropped)."""
        raise NotImplementedError


class H264Depacketizer:
    """Turns the RTP payloads of one access unit back into an Annex-B stream."""

    def is_frame_start(self, payload: bytes) -> bool:
        """H264 has no frame-start flag; True for payloads that can only begin an
        access unit (SPS/PPS/AUD/SEI, STAP-A, or a slice / FU-A start with
        first_mb_in_slice == 0)."""
        raise NotImplementedError

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` carries an IDR slice or SPS."""
        raise NotImplementedError

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """Annex-B bytes of one access unit; raises ``ValueError`` on malformed payloads."""
        raise NotImplementedError
