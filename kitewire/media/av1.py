"""AV1 RTP payload format (the AOM "RTP Payload Format for AV1"): aggregation header,
OBU elements, packetizer, depacketizer.

Each payload starts with the aggregation header ``Z Y W W N - - -``: Z the first
element continues an OBU begun in the previous packet, Y the last element goes on in
the next, W the number of elements (0: each is preceded by its LEB128 length; 1-3:
all but the last are), N the packet starts a new coded video sequence (a keyframe
with its sequence header). Elements are OBUs *without* their size field; temporal
delimiters are not sent. The decoder gets the usual low-overhead bitstream back:
a temporal delimiter, then every OBU with its size field.
"""

from __future__ import annotations

from collections.abc import Sequence

from kitewire.media.av1_obu import (
    OBU_PADDING,
    OBU_SEQUENCE_HEADER,
    OBU_TEMPORAL_DELIMITER,
    OBU_TILE_LIST,
    av1_bitstream_is_keyframe,
    leb128,
    read_leb128,
    split_obus,
)
from kitewire.media.keyframe import av1_is_keyframe
from kitewire.media.packetizer import DEFAULT_MAX_PAYLOAD_SIZE
from kitewire.media.vp8_descriptor import Payload

__all__ = ["Av1Depacketizer", "Av1Packetizer", "av1_bitstream_is_keyframe", "split_obus"]

_TEMPORAL_DELIMITER = bytes((OBU_TEMPORAL_DELIMITER << 3 | 0x02, 0))


class Av1Packetizer:
    """Splits AV1 temporal units into RTP payloads (W=0: every element length-prefixed)."""

    def __init__(self, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> None:
        if max_payload_size <= 8:
            raise ValueError(f"AV1 packetizer: expected max_payload_size > 8, got {max_payload_size}")
        self.max_payload_size = max_payload_size

    def packetize(self, frame: bytes) -> list[bytes]:
        """RTP payloads for one temporal unit (OBUs with size fields, as encoders write it)."""
        if not frame:
            raise ValueError("AV1 packetizer: expected a non-empty temporal unit, got 0 bytes")
        obus = [
            (obu_type, head + payload)
            for obu_type, head, payload in split_obus(frame)
            if obu_type not in (OBU_TEMPORAL_DELIMITER, OBU_TILE_LIST, OBU_PADDING)
        ]
        if not obus:
            raise ValueError("AV1 packetizer: expected at least one OBU to send, got only delimiters")
        new_sequence = any(obu_type == OBU_SEQUENCE_HEADER for obu_type, _ in obus)
        packets: list[bytes] = []
        current = bytearray()
        continues = False  # Z of the packet being filled
        for _, obu in obus:
            remaining = memoryview(obu)
            while remaining:
                room = self.max_payload_size - 1 - len(current)
                room -= len(leb128(room))
                if room <= 0:
                    packets.append(self._finish(current, continues, False, not packets and new_sequence))
                    current, continues = bytearray(), False
                    continue
                chunk = remaining[:room]
                remaining = remaining[room:]
                current += leb128(len(chunk)) + chunk
                if remaining:
                    packets.append(self._finish(current, continues, True, not packets and new_sequence))
                    current, continues = bytearray(), True
        if current:
            packets.append(self._finish(current, continues, False, not packets and new_sequence))
        return packets

    @staticmethod
    def _finish(elements: bytearray, continues: bool, goes_on: bool, new_sequence: bool) -> bytes:
        aggregation = (0x80 if continues else 0) | (0x40 if goes_on else 0) | (0x08 if new_sequence else 0)
        return bytes((aggregation,)) + bytes(elements)


def _elements(payload: Payload) -> list[bytes]:
    aggregation = payload[0]
    count = (aggregation >> 4) & 0x03
    offset, size = 1, len(payload)
    elements: list[bytes] = []
    while offset < size:
        last_of_counted = count and len(elements) == count - 1
        if last_of_counted:
            length = size - offset
        else:
            length, offset = read_leb128(payload, offset)
        if offset + length > size:
            raise ValueError(f"AV1 depacketizer: element of {length} bytes runs past the payload")
        elements.append(bytes(payload[offset : offset + length]))
        offset += length
        if last_of_counted:
            break
    if count and len(elements) != count:
        raise ValueError(f"AV1 depacketizer: expected {count} elements (W), got {len(elements)}")
    return elements


class Av1Depacketizer:
    """Rebuilds a temporal unit (low-overhead bitstream) from its RTP payloads."""

    def is_frame_start(self, payload: bytes) -> bool:
        """True when the payload does not continue an OBU from the previous packet."""
        return len(payload) >= 1 and not payload[0] & 0x80

    def is_keyframe(self, payload: bytes) -> bool:
        """True when ``payload`` starts an AV1 keyframe."""
        return av1_is_keyframe(payload)

    def depacketize(self, payloads: Sequence[bytes]) -> bytes:
        """The temporal unit of one frame; raises ``ValueError`` on a malformed payload."""
        if not payloads:
            raise ValueError("AV1 depacketizer: expected at least one payload, got none")
        if not self.is_frame_start(payloads[0]):
            raise ValueError("AV1 depacketizer: expected the first payload to start an OBU (Z=0)")
        obus: list[bytes] = []
        partial: bytearray | None = None
        for payload in payloads:
            if not payload:
                raise ValueError("AV1 depacketizer: expected an aggregation header, got an empty payload")
            elements = _elements(payload)
            continues, goes_on = bool(payload[0] & 0x80), bool(payload[0] & 0x40)
            for index, element in enumerate(elements):
                if index == 0 and continues:
                    if partial is None:
                        raise ValueError("AV1 depacketizer: Z=1 but no OBU fragment came before")
                    partial += element
                else:
                    if partial is not None:
                        obus.append(bytes(partial))
                    partial = bytearray(element)
                if index == len(elements) - 1 and not goes_on:
                    obus.append(bytes(partial))
                    partial = None
        if partial is not None:
            raise ValueError("AV1 depacketizer: the last OBU fragment was never finished (Y=1 at the end)")
        out = bytearray(_TEMPORAL_DELIMITER)
        for obu in obus:
            if not obu:
                raise ValueError("AV1 depacketizer: expected an OBU, got an empty element")
            header_size = 2 if obu[0] & 0x04 else 1
            if len(obu) < header_size:
                raise ValueError(f"AV1 depacketizer: expected an OBU of at least {header_size} header bytes, got 1")
            if obu[0] & 0x02:  # the sender kept the size field: already complete
                out += obu
                continue
            if (obu[0] >> 3) & 0x0F == OBU_TEMPORAL_DELIMITER:
                continue
            out += bytes((obu[0] | 0x02,)) + obu[1:header_size] + leb128(len(obu) - header_size) + obu[header_size:]
        return bytes(out)
