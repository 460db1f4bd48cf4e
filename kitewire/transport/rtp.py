"""Fast RTP header parsing, in-place rewriting and header extension value codecs.

Everything here works on ``bytes``/``bytearray`` with ``struct`` offsets, because
the SFU runs every forwarded packet through these functions. Parsing never
allocates more than one small :class:`RtpHeader` and a dict of extensions.

Header extension *values* (the bytes inside one extension element) have their
own encode/decode pairs at the bottom of the module: abs-capture-time,
video-orientation, abs-send-time, transport-wide sequence number, mid, rid.
"""

from __future__ import annotations

import random
import struct
from typing import Final

__all__ = [
    "SUPPORTED_HEADER_EXTENSIONS",
    "URI_ABS_CAPTURE_TIME",
    "URI_ABS_SEND_TIME",
    "URI_AUDIO_LEVEL",
    "URI_MID",
    "URI_REPAIRED_RID",
    "URI_RID",
    "URI_TRANSPORT_CC",
    "URI_VIDEO_ORIENTATION",
    "RtpHeader",
    "RtpHeaderTemplate",
    "build_rtp_packet",
    "decode_abs_capture_time",
    "decode_abs_send_time",
    "decode_sdes_string",
    "decode_transport_cc",
    "decode_video_orientation",
    "encode_abs_capture_time",
    "encode_abs_send_time",
    "encode_sdes_string",
    "encode_transport_cc",
    "encode_video_orientation",
    "initial_sequence_number",
    "is_rtcp",
    "parse_rtp_header",
    "remove_extension",
    "rewrite_extension_id",
    "set_extension",
    "set_marker",
    "set_payload_type",
    "set_sequence_number",
    "set_ssrc",
    "set_timestamp",
]

URI_MID: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_RID: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_REPAIRED_RID: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
URI_ABS_SEND_TIME: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_TRANSPORT_CC: Final = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
URI_ABS_CAPTURE_TIME: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
URI_VIDEO_ORIENTATION: Final = "urn:3gpp:video-orientation"
#: RFC 6464 client-to-mixer audio level (one byte: V flag, then -dBov 0..127).
URI_AUDIO_LEVEL: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

#: Header extensions the transport negotiates, in the order it offers them.
SUPPORTED_HEADER_EXTENSIONS: Final[tuple[str, ...]] = (
    URI_MID,
    URI_RID,
    URI_REPAIRED_RID,
    URI_ABS_SEND_TIME,
    URI_TRANSPORT_CC,
    URI_ABS_CAPTURE_TIME,
    URI_VIDEO_ORIENTATION,
)

_ONE_BYTE_PROFILE: Final = 0xBEDE
# RFC 8285 two-byte profile: 0x100 followed by a 4-bit "appbits" field.
_TWO_BYTE_PROFILE_MASK: Final = 0xFFF0
_TWO_BYTE_PROFILE: Final = 0x1000

_unpack_fixed = struct.Struct("!BBHII").unpack_from
_pack_fixed = struct.Struct("!BBHII").pack
# The first four header fields (V/P/X/CC, M/PT, sequence number, timestamp): what changes per packet.
_pack_header_start = struct.Struct("!BBHI").pack
_pack_u16 = struct.Struct("!H").pack_into
_pack_u32 = struct.Struct("!I").pack_into
_unpack_u16 = struct.Struct("!H").unpack_from


def initial_sequence_number() -> int:
    """A random first RTP sequence number below 0x8000, as libwebrtc picks.

    At least 32768 packets go out before the first wrap, so a receiver's SRTP
    context always sees some of them and counts the rollover; a start just
    below the wrap whose first packets are lost leaves the receiver one
    rollover behind, unable to decrypt anything after it.
    """
    return random.randrange(0x8000)


class RtpHeader:
    """The parsed fixed header and extensions of one RTP packet.

    ``payload_offset``/``payload_end`` delimit the payload inside the packet
    bytes (``payload_end`` excludes padding). ``extensions`` maps the local
    extension id to its raw value bytes. ``rid`` is filled in by the receiver
    (from the rid extension or a learned ssrc->rid mapping); ``None`` when the
    stream is not simulcast.
    """

    __slots__ = (
        "extension_profile",
        "extensions",
        "marker",
        "payload_end",
        "payload_offset",
        "payload_type",
        "rid",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        ssrc: int,
        sequence_number: int,
        timestamp: int,
        marker: bool,
        payload_type: int,
        payload_offset: int,
        payload_end: int,
        extensions: dict[int, bytes],
        extension_profile: int = 0,
        rid: str | None = None,
    ) -> None:
        self.ssrc = ssrc
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.marker = marker
        self.payload_type = payload_type
        self.payload_offset = payload_offset
        self.payload_end = payload_end
        self.extensions = extensions
        self.extension_profile = extension_profile
        self.rid = rid

    def __repr__(self) -> str:
        return (
            f"RtpHeader(ssrc={self.ssrc}, seq={self.sequence_number}, ts={self.timestamp}, "
            f"marker={self.marker}, pt={self.payload_type}, rid={self.rid!r}, "
            f"payload=[{self.payload_offset}:{self.payload_end}], ext={self.extensions!r})"
        )


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """True when a (demultiplexed, rtcp-mux) packet is RTCP rather than RTP (RFC 5761)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_rtp_header(data: bytes | bytearray | memoryview) -> RtpHeader:
    """Parse the RTP fixed header, CSRCs and header extensions of ``data``.

    Raises ValueError for anything that is not a well-formed RTP version 2 packet.
    """
    length = len(data)
    if length < 12:
        raise ValueError(f"RTP packet needs at least 12 bytes, got {length}")
    b0, b1, seq, ts, ssrc = _unpack_fixed(data, 0)
    if b0 >> 6 != 2:
        raise ValueError(f"RTP version 2 expected, got version {b0 >> 6}")
    offset = 12 + (b0 & 0x0F) * 4
    extensions: dict[int, bytes] = {}
    profile = 0
    if b0 & 0x10:
        if offset + 4 > length:
            raise ValueError(f"RTP extension header expected at byte {offset}, packet has {length}")
        profile, words = struct.unpack_from("!HH", data, offset)
        offset += 4
        ext_end = offset + words * 4
        if ext_end > length:
            raise ValueError(f"RTP extension block of {words * 4} bytes at {offset} exceeds packet of {length}")
        if profile == _ONE_BYTE_PROFILE:
            _parse_one_byte(data, offset, ext_end, extensions)
        elif profile & _TWO_BYTE_PROFILE_MASK == _TWO_BYTE_PROFILE:
            _parse_two_byte(data, offset, ext_end, extensions)
        offset = ext_end
    end = length
    if b0 & 0x20:
        pad = data[length - 1]
        if pad == 0 or offset + pad > length:
            raise ValueError(f"RTP padding of {pad} bytes invalid for packet of {length}")
        end = length - pad
    if offset > end:
        raise ValueError(f"RTP header of {offset} bytes exceeds packet of {length}")
    return RtpHeader(ssrc, seq, ts, bool(b1 & 0x80), b1 & 0x7F, offset, end, extensions, profile)


def _parse_one_byte(data: bytes | bytearray | memoryview, pos: int, end: int, out: dict[int, bytes]) -> None:
    as_bytes = type(data) is bytes  # slices of bytes are already bytes: no copy needed
    while pos < end:
        b = data[pos]
        if b == 0:  # padding between elements
            pos += 1
            continue
        ext_id = b >> 4
        if ext_id == 15:  # RFC 8285: id 15 stops parsing
            return
        pos += 1
        stop = pos + (b & 0x0F) + 1
        if stop > end:
            raise ValueError(f"RTP one-byte extension id {ext_id} of {(b & 0x0F) + 1} bytes overruns block")
        out[ext_id] = data[pos:stop] if as_bytes else bytes(data[pos:stop])  # type: ignore[assignment]
        pos = stop


def _parse_two_byte(data: bytes | bytearray | memoryview, pos: int, end: int, out: dict[int, bytes]) -> None:
    while pos < end:
        ext_id = data[pos]
        if ext_id == 0:
            pos += 1
            continue
        if pos + 1 >= end:
            raise ValueError(f"RTP two-byte extension id {ext_id} truncated")
        size = data[pos + 1]
        pos += 2
        if pos + size > end:
            raise ValueError(f"RTP two-byte extension id {ext_id} of {size} bytes overruns block")
        out[ext_id] = bytes(data[pos : pos + size])
        pos += size


def build_rtp_packet(
    *,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    payload: bytes | bytearray | memoryview,
    marker: bool = False,
    extensions: dict[int, bytes] | None = None,
) -> bytes:
    """Build one RTP packet. ``extensions`` maps extension id -> value bytes.

    Uses the one-byte form (RFC 8285) when every id is 1..14 and every value is
    1..16 bytes, else the two-byte form.
    """
    b0 = 0x80
    ext_block = b""
    if extensions:
        ext_block, _ = _build_extension_block(extensions)
        b0 |= 0x10
    header = _pack_fixed(
        b0,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    return b"".join((header, ext_block, bytes(payload)))


def _build_extension_block(extensions: dict[int, bytes]) -> tuple[bytes, dict[int, int]]:
    """The extension block (profile, length, elements, padding) and where each value starts in it."""
    one_byte = all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in extensions.items())
    parts: list[bytes] = []
    offsets: dict[int, int] = {}
    position = 4  # after the profile and length words
    for ext_id, value in extensions.items():
        if one_byte:
            parts.append(bytes(((ext_id << 4) | (len(value) - 1),)))
            position += 1
        else:
            if not 1 <= ext_id <= 255 or len(value) > 255:
                raise ValueError(
                    f"RTP extension id 1..255 with value <= 255 bytes expected, got id {ext_id} with {len(value)} bytes"
                )
            parts.append(bytes((ext_id, len(value))))
            position += 2
        offsets[ext_id] = position
        parts.append(value)
        position += len(value)
    body = b"".join(parts)
    body += b"\x00" * (-len(body) % 4)
    profile = _ONE_BYTE_PROFILE if one_byte else _TWO_BYTE_PROFILE
    return struct.pack("!HH", profile, len(body) // 4) + body, offsets


class RtpHeaderTemplate:
    """An RTP header prebuilt for one stream, with slots for per-packet extension values.

    Everything from the SSRC on (the SSRC, the fixed extensions such as mid,
    the extension block's layout) is built once, exactly as
    :func:`build_rtp_packet` lays it out for the same extensions in the same
    order; :meth:`packet` fills in marker, sequence number, timestamp and the
    slot values. ``fixed`` maps extension id -> value, ``slots`` lists
    (extension id, value size) of the values given per packet, in order.
    """

    __slots__ = ("_first_byte", "_marker_payload_type", "_payload_type", "_segments", "_sizes")

    def __init__(
        self,
        *,
        payload_type: int,
        ssrc: int,
        fixed: dict[int, bytes] | None = None,
        slots: tuple[tuple[int, int], ...] = (),
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"RTP payload type 0..127 expected, got {payload_type}")
        extensions = dict(fixed or {})
        for ext_id, size in slots:
            if ext_id in extensions:
                raise ValueError(f"RTP header template: each extension id once expected, got {ext_id} twice")
            if not 0 <= size <= 255:
                raise ValueError(f"RTP header template: slot sizes 0..255 expected, got {size} for id {ext_id}")
            extensions[ext_id] = bytes(size)
        first_byte = 0x80
        block = b""
        offsets: dict[int, int] = {}
        if extensions:
            block, offsets = _build_extension_block(extensions)
            first_byte |= 0x10
        self._first_byte = first_byte
        self._payload_type = payload_type
        self._marker_payload_type = 0x80 | payload_type
        tail = struct.pack("!I", ssrc & 0xFFFFFFFF) + block
        # The header from byte 8 (the SSRC) on, cut around the slots: fixed bytes and values alternate.
        segments: list[bytes] = []
        position = 0
        for ext_id, size in slots:
            offset = 4 + offsets[ext_id]
            segments.append(tail[position:offset])
            position = offset + size
        segments.append(tail[position:])
        self._segments = tuple(segments)
        self._sizes = tuple(size for _, size in slots)

    @property
    def slot_count(self) -> int:
        """How many values :meth:`packet` takes."""
        return len(self._sizes)

    def packet(
        self,
        sequence_number: int,
        timestamp: int,
        marker: bool,
        payload: tuple[bytes | bytearray | memoryview, ...],
        values: tuple[bytes, ...] = (),
    ) -> bytes:
        """The packet: this header with ``values`` in the slots, then the ``payload`` pieces joined.

        ValueError when ``values`` do not match the slots in number and sizes.
        """
        start = _pack_header_start(
            self._first_byte,
            self._marker_payload_type if marker else self._payload_type,
            sequence_number & 0xFFFF,
            timestamp & 0xFFFFFFFF,
        )
        segments = self._segments
        if not values and len(segments) == 1:
            return b"".join((start, segments[0], *payload))
        if len(values) == 1 and len(segments) == 2 and len(values[0]) == self._sizes[0]:
            return b"".join((start, segments[0], values[0], segments[1], *payload))
        return b"".join((start, *self._interleave(values), *payload))

    def _interleave(self, values: tuple[bytes, ...]) -> list[bytes]:
        """The header from the SSRC on, with ``values`` between the fixed segments (checked against the slots)."""
        sizes = self._sizes
        if len(values) != len(sizes):
            raise ValueError(f"RTP header template: {len(sizes)} slot values expected, got {len(values)}")
        segments = self._segments
        pieces = [segments[0]]
        for value, size, segment in zip(values, sizes, segments[1:], strict=True):
            if len(value) != size:
                raise ValueError(f"RTP header template: a {size}-byte slot value expected, got {len(value)} bytes")
            pieces.append(value)
            pieces.append(segment)
        return pieces


def set_ssrc(packet: bytearray, ssrc: int) -> None:
    """Overwrite the SSRC of an RTP packet in place."""
    _pack_u32(packet, 8, ssrc)


def set_sequence_number(packet: bytearray, sequence_number: int) -> None:
    """Overwrite the sequence number of an RTP packet in place."""
    _pack_u16(packet, 2, sequence_number & 0xFFFF)


def set_timestamp(packet: bytearray, timestamp: int) -> None:
    """Overwrite the RTP timestamp of an RTP packet in place."""
    _pack_u32(packet, 4, timestamp & 0xFFFFFFFF)


def set_payload_type(packet: bytearray, payload_type: int) -> None:
    """Overwrite the payload type (keeping the marker bit) in place."""
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload type 0..127 expected, got {payload_type}")
    packet[1] = (packet[1] & 0x80) | payload_type


def set_marker(packet: bytearray, marker: bool) -> None:
    """Set or clear the marker bit in place."""
    packet[1] = (packet[1] & 0x7F) | (0x80 if marker else 0)


def rewrite_extension_id(packet: bytearray, old_id: int, new_id: int) -> bool:
    """Change one header extension's id in place; returns False if ``old_id`` is absent.

    Works for both one-byte and two-byte forms; in the one-byte form ``new_id``
    must be 1..14.
    """
    loc = _locate_extension(packet, old_id)
    if loc is None:
        return False
    header_pos, _, _, two_byte = loc
    if two_byte:
        if not 1 <= new_id <= 255:
            raise ValueError(f"two-byte extension id 1..255 expected, got {new_id}")
        packet[header_pos] = new_id
    else:
        if not 1 <= new_id <= 14:
            raise ValueError(f"one-byte extension id 1..14 expected, got {new_id}")
        packet[header_pos] = (new_id << 4) | (packet[header_pos] & 0x0F)
    return True


def remove_extension(packet: bytearray, ext_id: int) -> bool:
    """Neutralise one header extension in place by overwriting it with padding.

    The packet length does not change (the element's bytes become padding
    bytes, which receivers skip), so this stays O(1) and allocation-free.
    Returns False if the extension is absent.
    """
    loc = _locate_extension(packet, ext_id)
    if loc is None:
        return False
    header_pos, value_pos, size, _ = loc
    # Zero bytes are padding in both RFC 8285 forms, so the element vanishes
    # for any receiver without moving the payload.
    packet[header_pos : value_pos + size] = bytes(value_pos + size - header_pos)
    return True


def set_extension(packet: bytearray, ext_id: int, value: bytes) -> bool:
    """Overwrite the value of an existing extension of the same length, in place.

    Returns False when the extension is absent or has a different length (the
    caller then rebuilds the packet with :func:`build_rtp_packet`).
    """
    loc = _locate_extension(packet, ext_id)
    if loc is None:
        return False
    _, value_pos, size, _ = loc
    if size != len(value):
        return False
    packet[value_pos : value_pos + size] = value
    return True


def _locate_extension(packet: bytearray | bytes, ext_id: int) -> tuple[int, int, int, bool] | None:
    """Find an extension element: (element start, value start, value size, two_byte)."""
    length = len(packet)
    if length < 12 or not packet[0] & 0x10:
        return None
    pos = 12 + (packet[0] & 0x0F) * 4
    if pos + 4 > length:
        return None
    profile, words = struct.unpack_from("!HH", packet, pos)
    pos += 4
    end = min(pos + words * 4, length)
    if profile == _ONE_BYTE_PROFILE:
        while pos < end:
            b = packet[pos]
            if b == 0:
                pos += 1
                continue
            current = b >> 4
            if current == 15:
                return None
            size = (b & 0x0F) + 1
            if current == ext_id:
                return (pos, pos + 1, size, False) if pos + 1 + size <= end else None
            pos += 1 + size
    elif profile & _TWO_BYTE_PROFILE_MASK == _TWO_BYTE_PROFILE:
        while pos + 1 < end:
            current = packet[pos]
            if current == 0:
                pos += 1
                continue
            size = packet[pos + 1]
            if current == ext_id:
                return (pos, pos + 2, size, True) if pos + 2 + size <= end else None
            pos += 2 + size
    return None


# --- header extension value codecs ----------------------------------------

_US_PER_SECOND: Final = 1_000_000
_ROTATION_TO_CVO: Final = {0: 0, 90: 1, 180: 2, 270: 3}


def encode_abs_capture_time(ntp_time_us: int, estimated_clock_offset_us: int | None = None) -> bytes:
    """Encode abs-capture-time: microseconds on the NTP timescale -> 8 (or 16) bytes.

    The value is a 64-bit Q32.32 NTP timestamp; every integer microsecond value
    >= 0 that fits in 32 bits of seconds round-trips exactly through
    :func:`decode_abs_capture_time`. The optional clock offset is a signed Q32.32.
    """
    if not isinstance(ntp_time_us, int) or ntp_time_us < 0:
        raise ValueError(f"abs-capture-time: integer microseconds >= 0 expected, got {ntp_time_us!r}")
    seconds, micros = divmod(ntp_time_us, _US_PER_SECOND)
    if seconds >= 1 << 32:
        raise ValueError(f"abs-capture-time: at most {(1 << 32) * _US_PER_SECOND - 1} microseconds, got {ntp_time_us}")
    # Rounding to nearest makes the decode (also rounding) its exact inverse,
    # because one microsecond spans ~4295 fraction units.
    fraction = ((micros << 32) + _US_PER_SECOND // 2) // _US_PER_SECOND
    value = struct.pack("!Q", (seconds << 32) + fraction)
    if estimated_clock_offset_us is not None:
        offset_q32 = _us_to_q32_signed(estimated_clock_offset_us)
        value += struct.pack("!q", offset_q32)
    return value


def _us_to_q32_signed(us: int) -> int:
    sign = -1 if us < 0 else 1
    magnitude = abs(us)
    seconds, micros = divmod(magnitude, _US_PER_SECOND)
    q = (seconds << 32) + ((micros << 32) + _US_PER_SECOND // 2) // _US_PER_SECOND
    if q >= 1 << 63:
        raise ValueError(f"abs-capture-time clock offset out of range: {us} us")
    return sign * q


def _q32_to_us(q: int) -> int:
    sign = -1 if q < 0 else 1
    q = abs(q)
    seconds = q >> 32
    micros = ((q & 0xFFFFFFFF) * _US_PER_SECOND + (1 << 31)) >> 32
    return sign * (seconds * _US_PER_SECOND + micros)


def decode_abs_capture_time(value: bytes) -> tuple[int, int | None]:
    """Decode abs-capture-time -> (ntp_time_us, estimated_clock_offset_us or None)."""
    if len(value) not in (8, 16):
        raise ValueError(f"abs-capture-time: 8 or 16 bytes expected, got {len(value)}")
    (ntp,) = struct.unpack_from("!Q", value, 0)
    offset: int | None = None
    if len(value) == 16:
        (offset_q32,) = struct.unpack_from("!q", value, 8)
        offset = _q32_to_us(offset_q32)
    return _q32_to_us(ntp), offset


def encode_video_orientation(rotation: int) -> bytes:
    """Encode the CVO byte (urn:3gpp:video-orientation) for rotation 0/90/180/270."""
    try:
        return bytes((_ROTATION_TO_CVO[rotation],))
    except (KeyError, TypeError):
        raise ValueError(f"video rotation 0, 90, 180 or 270 expected, got {rotation!r}") from None


def decode_video_orientation(value: bytes) -> int:
    """Decode the CVO byte -> rotation in degrees (0, 90, 180 or 270)."""
    if len(value) < 1:
        raise ValueError("video-orientation: 1 byte expected, got 0")
    # Low two bits are the rotation in 90 degree steps; camera and flip bits are ignored.
    return (value[0] & 0x03) * 90


def encode_abs_send_time(seconds: float) -> bytes:
    """Encode abs-send-time: 24-bit 6.18 fixed point seconds (wraps every 64 s)."""
    fixed = round(seconds * (1 << 18)) & 0xFFFFFF
    return fixed.to_bytes(3, "big")


def decode_abs_send_time(value: bytes) -> float:
    """Decode abs-send-time -> seconds in [0, 64)."""
    if len(value) != 3:
        raise ValueError(f"abs-send-time: 3 bytes expected, got {len(value)}")
    return int.from_bytes(value, "big") / (1 << 18)


def encode_transport_cc(sequence_number: int) -> bytes:
    """Encode the transport-wide sequence number (16 bits)."""
    return (sequence_number & 0xFFFF).to_bytes(2, "big")


def decode_transport_cc(value: bytes) -> int:
    """Decode the transport-wide sequence number."""
    if len(value) != 2:
        raise ValueError(f"transport-cc sequence number: 2 bytes expected, got {len(value)}")
    return int.from_bytes(value, "big")


def encode_sdes_string(text: str) -> bytes:
    """Encode a mid / rid / repaired-rid extension value (ASCII, 1..16 bytes)."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"mid/rid: ASCII text expected, got {text!r}") from None
    if not 1 <= len(raw) <= 16:
        raise ValueError(f"mid/rid: 1..16 characters expected, got {len(raw)} ({text!r})")
    return raw


def decode_sdes_string(value: bytes) -> str:
    """Decode a mid / rid extension value (trailing NULs stripped)."""
    return bytes(value).rstrip(b"\x00").decode("ascii", errors="replace")
