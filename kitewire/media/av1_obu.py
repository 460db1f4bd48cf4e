"""AV1 OBUs (open bitstream units): LEB128 lengths, splitting a low-overhead
bitstream, the keyframe test on a temporal unit. Shared by the AV1 payload format
and the keyframe rules."""

from __future__ import annotations

from collections.abc import Iterator

from kitewire.media.vp8_descriptor import Payload

__all__ = [
    "OBU_METADATA",
    "OBU_PADDING",
    "OBU_SEQUENCE_HEADER",
    "OBU_TEMPORAL_DELIMITER",
    "OBU_TILE_LIST",
    "av1_bitstream_is_keyframe",
    "leb128",
    "obu_spans",
    "read_leb128",
    "split_obus",
]

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_METADATA = 5
OBU_TILE_LIST = 8
OBU_PADDING = 15
_MAX_LEB128_BYTES = 8


def leb128(value: int) -> bytes:
    """``value`` as an unsigned LEB128 number (``ValueError`` for a negative one, which has no such form)."""
    if value < 0:
        raise ValueError(f"AV1: expected a length of 0 or more for LEB128, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_leb128(data: Payload, offset: int) -> tuple[int, int]:
    """(value, offset after it); raises ``ValueError`` when cut short or too long."""
    value = 0
    for index in range(_MAX_LEB128_BYTES):
        if offset + index >= len(data):
            raise ValueError("AV1: expected a complete LEB128 length, got the end of the data")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise ValueError(f"AV1: expected a LEB128 length of at most {_MAX_LEB128_BYTES} bytes")


def split_obus(data: Payload) -> Iterator[tuple[int, bytes, bytes]]:
    """(type, header bytes without the size flag, payload) of each OBU of a
    low-overhead bitstream; raises ``ValueError`` on a malformed one."""
    offset, size = 0, len(data)
    while offset < size:
        header = data[offset]
        if header & 0x80:
            raise ValueError("AV1: expected an OBU header with forbidden bit 0")
        obu_type = (header >> 3) & 0x0F
        header_size = 2 if header & 0x04 else 1
        if offset + header_size > size:
            raise ValueError("AV1: expected an OBU extension byte, got the end of the data")
        head = bytes((header & ~0x02,)) + bytes(data[offset + 1 : offset + header_size])
        offset += header_size
        if header & 0x02:
            length, offset = read_leb128(data, offset)
        else:
            length = size - offset
        if offset + length > size:
            raise ValueError(f"AV1: OBU of {length} bytes runs past the end of the data")
        yield obu_type, head, bytes(data[offset : offset + length])
        offset += length


def av1_bitstream_is_keyframe(data: Payload) -> bool:
    """True when a temporal unit carries a sequence header (how real-time encoders
    and libwebrtc start every keyframe). Malformed data -> False."""
    try:
        return any(obu_type == OBU_SEQUENCE_HEADER for obu_type, _, _ in split_obus(data))
    except ValueError:
        return False


def obu_spans(data: Payload) -> list[tuple[int, int, int, int]]:
    """(type, start, payload start, end) of each OBU of a low-overhead bitstream;
    raises ``ValueError`` on a malformed one."""
    spans: list[tuple[int, int, int, int]] = []
    offset, size = 0, len(data)
    while offset < size:
        start = offset
        header = data[offset]
        if header & 0x80:
            raise ValueError("AV1: expected an OBU header with forbidden bit 0")
        offset += 2 if header & 0x04 else 1
        if offset > size:
            raise ValueError("AV1: expected an OBU extension byte, got the end of the data")
        length = size - offset
        if header & 0x02:
            length, offset = read_leb128(data, offset)
        if offset + length > size:
            raise ValueError(f"AV1: OBU of {length} bytes runs past the end of the data")
        spans.append(((header >> 3) & 0x0F, start, offset, offset + length))
        offset += length
    return spans
