"""H265 RTP payload format (RFC 7798): an Annex-B access unit to single NAL unit
packets, aggregation packets (type 48) and fragmentation units (type 49), and back.

The payload header is two bytes, ``F | type (6) | layer id (6) | TID (3)``; an
aggregation packet holds NAL units each behind a 2-byte size, a fragmentation unit a
third byte ``S | E | type (6)`` in front of a piece of one NAL unit. DONL fields
(sprop-max-don-diff > 0) are neither negotiated, sent nor expected.
"""

from __future__ import annotations

from collections.abc import Sequence

from kitewire.media.h264 import ANNEXB_START_CODE, pack_nal_units, split_annexb
from kitewire.media.keyframe import h265_is_keyframe, h265_nal_type
from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE

__all__ = ["H265Depacketizer", "H265Packetizer"]

NAL_AUD = 35
NAL_PREFIX_SEI = 39
NAL_SUFFIX_SEI = 40
NAL_AP = 48
NAL_FU = 49
_HEADER_SIZE = 2
_FU_OVERHEAD = 3  # payload header and FU header


class H265Packetizer:
    """Packetizes Annex-B access units: NAL units that fit go as they are, small
    neighbours (VPS, SPS, PPS) together in one aggregation packet, NAL units larger
    than the payload size in fragmentation units."""

    def __init__(self, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE, *, drop_sei: bool = False) -> None:
        """``drop_sei``: leave out SEI NAL units (an encoder's banner or hashes; no
        receiver needs them to show the picture)."""
        if isinstance(max_payload_size, bool) or not isinstance(max_payload_size, int) or max_payload_size < 4:
            raise ValueError(f"H265 packetizer: expected max_payload_size >= 4, got {max_payload_size!r}")
        self.max_payload_size = max_payload_size
        dropped = {NAL_AUD, NAL_PREFIX_SEI, NAL_SUFFIX_SEI} if drop_sei else {NAL_AUD}
        self._dropped = frozenset(dropped)

    def packetize(self, frame: bytes) -> list[bytes]:
        """RTP payloads for one Annex-B access unit (access unit delimiters are dropped).

        Raises ``ValueError`` for an access unit without NAL units, a NAL unit shorter
        than its 2-byte header, or one of a type 48-63 (RTP payload structures, unspecified).
        """
        nals: list[bytes] = []
        for nal in split_annexb(frame):
            if len(nal) < _HEADER_SIZE:
                raise ValueError(f"H265 packetizer: expected a 2-byte NAL unit header, got {len(nal)} byte(s)")
            nal_type = h265_nal_type(nal[0])
            if nal_type >= NAL_AP:
                # 48-50 are RTP payload structures, 51-63 unspecified: receivers refuse both
                raise ValueError(f"H265 packetizer: expected NAL unit types 0-47, got {nal_type}")
            if nal_type not in self._dropped:
                nals.append(nal)
        if not nals:
            raise ValueError("H265 packetizer: expected an Annex-B access unit with NAL units, got none")
        return pack_nal_units(
            nals,
            self.max_payload_size,
            aggregate_header_size=_HEADER_SIZE,
            aggregate=_aggregate,
            fragment=self._fragment,
        )

    def _fragment(self, nal: bytes) -> list[bytes]:
        nal_type = h265_nal_type(nal[0])
        # the NAL header with type 49: F, layer id and TID stay the NAL unit's own
        header = bytes(((nal[0] & 0x81) | (NAL_FU << 1), nal[1]))
        body = memoryview(nal)[_HEADER_SIZE:]
        count = -(-len(body) // (self.max_payload_size - _FU_OVERHEAD))
        base, extra = divmod(len(body), count)
        fragments: list[bytes] = []
        start = 0
        for index in range(count):
            end = start + base + (1 if index < extra else 0)
            fu_header = nal_type | (0x80 if index == 0 else 0) | (0x40 if index == count - 1 else 0)
            fragments.append(header + bytes((fu_header,)) + body[start:end])
            start = end
        return fragments


def _aggregate(nals: list[bytes]) -> bytes:
    # RFC 7798 4.4.2: F is set when any aggregated F is, layer id and TID are the lowest
    forbidden = 0x80 if any(nal[0] & 0x80 for nal in nals) else 0
    layer_id = min(((nal[0] & 0x01) << 5) | (nal[1] >> 3) for nal in nals)
    tid = min(nal[1] & 0x07 for nal in nals)
    parts = [bytes((forbidden | (NAL_AP << 1) | (layer_id >> 5), ((layer_id & 0x1F) << 3) | tid))]
    for nal in nals:
        parts.append(len(nal).to_bytes(2, "big"))
        parts.append(nal)
    return b"".join(parts)


class H265Depacketizer:
    """Joins the payloads of one H265 access unit into Annex-B bytes."""

    def is_frame_start(self, payload: bytes) -> bool:
        """True unless the payload continues a fragmented NAL unit."""
        if len(payload) < _HEADER_SIZE:
            return False
        if h265_nal_type(payload[0]) != NAL_FU:
            return True
        return len(payload) >= _FU_OVERHEAD and bool(payload[2] & 0x80)

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
            if size < _HEADER_SIZE:
                raise ValueError(f"H265 depacketizer: expected a 2-byte payload header, got {size} byte(s)")
            nal_type = h265_nal_type(payload[0])
            if nal_type == NAL_FU:
                if size < _FU_OVERHEAD:
                    raise ValueError(f"H265 FU: expected at least 3 bytes, got {size}")
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
                offset = _HEADER_SIZE
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
