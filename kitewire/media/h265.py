"""H265 RTP payload format (RFC 7798), receive side: single NAL units, aggregation
packets (type 48) and fragmentation units (type 49) back to an Annex-B access unit.

The payload header is two bytes, ``F | type (6) | layer id (6) | TID (3)``; an
aggregation packet holds NAL units each behind a 2-byte size, a fragmentation unit a
third byte ``S | E | type (6)`` in front of a piece of one NAL unit. kitewire does not
send H265 (no encoder is shipped with the wheels it depends on), so there is no
packetizer; DONL fields (sprop-max-don-diff > 0) are not negotiated and not expected.
"""

from __future__ import annotations

from collections.abc import Sequence

from kitewire.media.h264 import ANNEXB_START_CODE
from kitewire.media.keyframe import h265_is_keyframe, h265_nal_type

__all__ = ["H265Depacketizer"]

NAL_AP = 48
NAL_FU = 49


class H265Depacketizer:
    """Joins the payloads of one H265 access unit into Annex-B bytes."""

    def is_frame_start(self, payload: bytes) -> bool:
        """True unless the payload continues a fragmented NAL unit."""
        if len(payload) < 3:
            return False
        return h265_nal_type(payload[0]) != NAL_FU or bool(payload[2] & 0x80)

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` carries an IRAP slice or parameter sets."""
        return h265_is_keyframe(payload)

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """Annex-B bytes of one access unit; raises ``ValueError`` on malformed payloads."""
        if not payloads:
            raise ValueError("H265 depacketizer: expected at least one payload, got none")
        out = bytearray()
        in_fragment = False
        for payload in payloads:
            size = len(payload)
            if size < 3:
                raise ValueError(f"H265 depacketizer: expected at least 3 bytes per payload, got {size}")
            nal_type = h265_nal_type(payload[0])
            if nal_type == NAL_FU:
                fu_header = payload[2]
                if fu_header & 0x80:
                    if in_fragment:
                        raise ValueError("H265 FU: expected a continuation fragment, got a new start")
                    out += ANNEXB_START_CODE
                    # the NAL header again, with the fragment's own type
                    out += bytes(((payload[0] & 0x81) | ((fu_header & 0x3F) << 1), payload[1]))
                    in_fragment = True
                elif not in_fragment:
                    raise ValueError("H265 FU: expected a start fragment (S=1), got a continuation")
                out += payload[3:]
                if fu_header & 0x40:
                    in_fragment = False
                continue
            if in_fragment:
                raise ValueError("H265 FU: expected the end fragment, got another packet type")
            if nal_type == NAL_AP:
                offset = 2
                while offset < size:
                    if offset + 2 > size:
                        raise ValueError(f"H265 AP: expected a 2-byte NAL size at offset {offset}, got end")
                    nal_size = (payload[offset] << 8) | payload[offset + 1]
                    offset += 2
                    if nal_size < 2 or offset + nal_size > size:
                        raise ValueError(f"H265 AP: NAL of {nal_size} bytes at {offset} overruns payload of {size}")
                    out += ANNEXB_START_CODE
                    out += payload[offset : offset + nal_size]
                    offset += nal_size
            elif nal_type < NAL_AP:
                out += ANNEXB_START_CODE
                out += payload
            else:
                raise ValueError(f"H265 depacketizer: expected NAL type 0-47, 48 (AP) or 49 (FU), got {nal_type}")
        if in_fragment:
            raise ValueError("H265 FU: expected an end fragment (E=1), the access unit ended without one")
        return bytes(out)
