"""H264 RTP payload format (RFC 6184, packetization-mode 1): single NAL unit,
STAP-A aggregation and FU-A fragmentation; Annex-B helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kitewire.media.keyframe import h264_is_keyframe
from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28

ANNEXB_START_CODE = b"\x00\x00\x00\x01"

# NAL types that only ever precede the first slice of an access unit.
_AU_PREFIX_TYPES = frozenset((NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD))


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units (without start codes) of an Annex-B byte stream.

    Data without any start code is returned as one NAL unit. Empty NAL units
    are dropped.
    """
    starts: list[tuple[int, int]] = []  # (start code position, NAL start)
    position = data.find(b"\x00\x00\x01")
    while position >= 0:
        code_start = position - 1 if position > 0 and data[position - 1] == 0 else position
        starts.append((code_start, position + 3))
        position = data.find(b"\x00\x00\x01", position + 3)
    if not starts:
        return [bytes(data)] if data else []
    nals: list[bytes] = []
    for index, (_, nal_start) in enumerate(starts):
        last = index + 1 == len(starts)
        nal_end = len(data) if last else starts[index + 1][0]
        # Zero bytes before a start code belong to the stream (trailing_zero_8bits), not the
        # NAL. The last NAL is kept whole: an encrypted frame ends with its key index (E2EE).
        while not last and nal_end > nal_start and data[nal_end - 1] == 0:
            nal_end -= 1
        if nal_end > nal_start:
            nals.append(bytes(data[nal_start:nal_end]))
    return nals


def pack_nal_units(
    nals: Sequence[bytes],
    limit: int,
    *,
    aggregate_header_size: int,
    aggregate: Callable[[list[bytes]], bytes],
    fragment: Callable[[bytes], list[bytes]],
) -> list[bytes]:
    """RTP payloads for NAL units, in order, as RFC 6184 (H264) and RFC 7798 (H265) both
    send them: a NAL unit over ``limit`` bytes in ``fragment``'s pieces, neighbours that
    fit together in one ``aggregate`` packet (its header ``aggregate_header_size`` bytes,
    then a 2-byte size before each NAL unit), and a NAL unit left alone as it is."""
    payloads: list[bytes] = []
    pending: list[bytes] = []  # small NAL units waiting to be aggregated
    pending_size = aggregate_header_size

    def flush() -> None:
        nonlocal pending_size
        if len(pending) == 1:
            payloads.append(pending[0])
        elif pending:
            payloads.append(aggregate(list(pending)))
        pending.clear()
        pending_size = aggregate_header_size

    for nal in nals:
        if len(nal) > limit:
            flush()
            payloads.extend(fragment(nal))
            continue
        if pending and pending_size + 2 + len(nal) > limit:
            flush()
        pending.append(nal)
        pending_size += 2 + len(nal)
    flush()
    return payloads


def _stap_a(nals: list[bytes]) -> bytes:
    # F is set when any aggregated F is, NRI is the highest
    header = max(nal[0] & 0x60 for nal in nals) | (0x80 if any(nal[0] & 0x80 for nal in nals) else 0)
    parts = [bytes((header | NAL_STAP_A,))]
    for nal in nals:
        parts.append(len(nal).to_bytes(2, "big"))
        parts.append(nal)
    return b"".join(parts)


class H264Packetizer:
    """Packetizes Annex-B access units: small NALs (SPS/PPS) go together in a
    STAP-A, NALs larger than the payload size are split into FU-A fragments,
    everything else travels as a single NAL unit packet."""

    def __init__(self, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE, *, drop_sei: bool = False) -> None:
        """``drop_sei``: leave out SEI NALs (x264 puts a ~600-byte banner in one)."""
        if max_payload_size < 3:
            raise ValueError(f"H264 packetizer: expected max_payload_size >= 3, got {max_payload_size}")
        self.max_payload_size = max_payload_size
        self._dropped = frozenset((NAL_AUD, NAL_SEI)) if drop_sei else frozenset((NAL_AUD,))

    def packetize(self, frame: bytes) -> list[bytes]:
        """RTP payloads for one Annex-B access unit (AUD NALs are dropped)."""
        dropped = self._dropped
        nals = [nal for nal in split_annexb(frame) if nal[0] & 0x1F not in dropped]
        if not nals:
            raise ValueError("H264 packetizer: expected an Annex-B access unit with NAL units, got none")
        return pack_nal_units(
            nals, self.max_payload_size, aggregate_header_size=1, aggregate=_stap_a, fragment=self._fragment
        )

    def _fragment(self, nal: bytes) -> list[bytes]:
        header = nal[0]
        indicator = (header & 0xE0) | NAL_FU_A
        nal_type = header & 0x1F
        body = memoryview(nal)[1:]
        chunk = self.max_payload_size - 2
        count = -(-len(body) // chunk)
        base, extra = divmod(len(body), count)
        fragments: list[bytes] = []
        start = 0
        for index in range(count):
            end = start + base + (1 if index < extra else 0)
            fu_header = nal_type
            if index == 0:
                fu_header |= 0x80
            if index == count - 1:
                fu_header |= 0x40
            fragments.append(bytes((indicator, fu_header)) + body[start:end])
            start = end
        return fragments


def _first_slice_starts_picture(byte_after_header: int) -> bool:
    # first_mb_in_slice is ue(v); its value 0 is coded as a single 1 bit.
    return bool(byte_after_header & 0x80)


class H264Depacketizer:
    """Turns the RTP payloads of one access unit back into an Annex-B stream."""

    def is_frame_start(self, payload: bytes) -> bool:
        """H264 has no frame-start flag; True for payloads that can only begin an
        access unit (SPS/PPS/AUD/SEI, STAP-A, or a slice / FU-A start with
        first_mb_in_slice == 0)."""
        if len(payload) < 2:
            return False
        nal_type = payload[0] & 0x1F
        if nal_type in _AU_PREFIX_TYPES or nal_type == NAL_STAP_A:
            return True
        if 1 <= nal_type <= 5:
            return _first_slice_starts_picture(payload[1])
        if nal_type == NAL_FU_A:
            if len(payload) < 3 or not payload[1] & 0x80:
                return False
            inner = payload[1] & 0x1F
            if inner in _AU_PREFIX_TYPES:
                return True
            return 1 <= inner <= 5 and _first_slice_starts_picture(payload[2])
        return False

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` carries an IDR slice or SPS."""
        return h264_is_keyframe(payload)

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """Annex-B bytes of one access unit; raises ``ValueError`` on malformed payloads."""
        if not payloads:
            raise ValueError("H264 depacketizer: expected at least one payload, got none")
        out = bytearray()
        in_fragment = False
        for payload in payloads:
            size = len(payload)
            if size < 1:
                raise ValueError("H264 depacketizer: expected a non-empty payload, got 0 bytes")
            nal_type = payload[0] & 0x1F
            if 1 <= nal_type <= 23:
                if in_fragment:
                    raise ValueError("H264 depacketizer: expected the FU-A end fragment, got a single NAL")
                out += ANNEXB_START_CODE
                out += payload
            elif nal_type == NAL_STAP_A:
                if in_fragment:
                    raise ValueError("H264 depacketizer: expected the FU-A end fragment, got a STAP-A")
                offset = 1
                while offset < size:
                    if offset + 2 > size:
                        raise ValueError(f"H264 STAP-A: expected a 2-byte NAL size at offset {offset}, got end")
                    nal_size = (payload[offset] << 8) | payload[offset + 1]
                    offset += 2
                    if nal_size == 0 or offset + nal_size > size:
                        raise ValueError(
                            f"H264 STAP-A: NAL of {nal_size} bytes at offset {offset} overruns payload of {size}"
                        )
                    out += ANNEXB_START_CODE
                    out += payload[offset : offset + nal_size]
                    offset += nal_size
            elif nal_type == NAL_FU_A:
                if size < 3:
                    raise ValueError(f"H264 FU-A: expected at least 3 bytes, got {size}")
                fu_header = payload[1]
                if fu_header & 0x80:
                    if in_fragment:
                        raise ValueError("H264 FU-A: expected a continuation fragment, got a new start")
                    out += ANNEXB_START_CODE
                    out.append((payload[0] & 0xE0) | (fu_header & 0x1F))
                    in_fragment = True
                elif not in_fragment:
                    raise ValueError("H264 FU-A: expected a start fragment (S=1), got a continuation")
                out += payload[2:]
                if fu_header & 0x40:
                    in_fragment = False
            else:
                raise ValueError(f"H264 depacketizer: expected NAL type 1-23, 24 (STAP-A) or 28 (FU-A), got {nal_type}")
        if in_fragment:
            raise ValueError("H264 FU-A: expected an end fragment (E=1), the access unit ended without one")
        return bytes(out)
