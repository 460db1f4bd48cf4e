"""Per-subscriber RTP rewriting: the part of the SFU that makes layer and
publisher switches invisible to the receiver.

A subscriber's downtrack has one SSRC and one continuous sequence-number and
timestamp space, whatever simulcast layer the packets come from. The
``RtpRewriter`` picks which incoming packets to forward (only the current
layer; a new layer only from a keyframe on), and maps their sequence number,
timestamp and (VP8) picture id / TL0PICIDX into the outgoing space. It works
on numbers and payload bytes only, so it is tested without any network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kitewire.media.keyframe import is_keyframe

__all__ = ["RewriteResult", "RtpRewriter", "SentPacketCache", "Vp8Descriptor", "parse_vp8_descriptor"]

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_PID_MOD = 1 << 15
_TL0_MOD = 1 << 8


def _seq_newer(a: int, b: int) -> bool:
    """True when 16-bit sequence number ``a`` comes after ``b``."""
    return a != b and ((a - b) % _SEQ_MOD) < 0x8000


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """Where a VP8 payload descriptor keeps the fields we rewrite (-1 = absent).

    ``picture_id_size`` is 1 (7-bit) or 2 (15-bit) bytes.
    """

    picture_id_offset: int
    picture_id_size: int
    picture_id: int
    tl0_offset: int
    tl0: int


def parse_vp8_descriptor(payload: bytes | bytearray | memoryview) -> Vp8Descriptor | None:
    """Locate the picture id and TL0PICIDX of a VP8 RTP payload (RFC 7741); None if truncated."""
    size = len(payload)
    if size < 1:
        return None
    first = payload[0]
    pid_offset = -1
    pid_size = 0
    pid = -1
    tl0_offset = -1
    tl0 = -1
    if first & 0x80:
        if size < 2:
            return None
        ext = payload[1]
        offset = 2
        if ext & 0x80:
            if size <= offset:
                return None
            if payload[offset] & 0x80:
                if size <= offset + 1:
                    return None
                pid_offset, pid_size = offset, 2
                pid = ((payload[offset] & 0x7F) << 8) | payload[offset + 1]
                offset += 2
            else:
                pid_offset, pid_size = offset, 1
                pid = payload[offset] & 0x7F
                offset += 1
        if ext & 0x40:
            if size <= offset:
                return None
            tl0_offset, tl0 = offset, payload[offset]
            offset += 1
    return Vp8Descriptor(pid_offset, pid_size, pid, tl0_offset, tl0)


@dataclass(slots=True)
class RewriteResult:
    """What to send for one forwarded packet."""

    sequence_number: int
    timestamp: int
    payload: bytes | bytearray | memoryview
    switched: bool


class RtpRewriter:
    """Maps packets of the selected layer into one continuous outgoing stream.

    Call ``rewrite(layer, seq, ts, payload, now)`` for every packet of the
    track, any layer; it returns ``None`` for packets not to forward. Switching
    to ``target_layer`` happens on the first keyframe packet of that layer.
    """

    def __init__(self, mime_type: str, clock_rate: int = 90000, *, requires_keyframe: bool = True) -> None:
        self.mime_type = mime_type
        # Audio has no keyframes: any packet of the target layer may start it.
        self.requires_keyframe = requires_keyframe
        self._is_vp8 = mime_type.lower().endswith("vp8")
        self.clock_rate = clock_rate
        self.target_layer: int | None = None
        self.current_layer: int | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        self._switch_seq = 0
        # Outgoing state: start at random points, as any RTP sender does.
        self._last_out_seq = random.randrange(_SEQ_MOD)
        self._last_out_ts = random.randrange(_TS_MOD)
        self._last_out_time: float | None = None
        self._last_in_ts = 0
        self._pid_offset = 0
        self._tl0_offset = 0
        self._last_out_pid = random.randrange(_PID_MOD)
        self._last_out_tl0 = random.randrange(_TL0_MOD)
        self.packets_forwarded = 0
        self.switches = 0

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while the target layer has not started yet (a keyframe is needed)."""
        return self.target_layer is not None and self.current_layer != self.target_layer

    def rewrite(
        self,
        layer: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes | bytearray | memoryview,
        now: float,
    ) -> RewriteResult | None:
        """Decide about one incoming packet; None means drop it."""
        switched = False
        if layer != self.current_layer:
            if layer != self.target_layer:
                return None
            if self.requires_keyframe and not is_keyframe(self.mime_type, bytes(payload[:64])):
                return None
            self._switch_to(layer, sequence_number, timestamp, payload, now)
            switched = True
        elif not _seq_newer(sequence_number, self._switch_seq) and sequence_number != self._switch_seq:
            # Older than the keyframe we switched at: it belongs to a frame the
            # receiver never got the start of.
            return None
        out_seq = (sequence_number + self._seq_offset) % _SEQ_MOD
        out_ts = (timestamp + self._ts_offset) % _TS_MOD
        if _seq_newer(out_seq, self._last_out_seq):
            self._last_out_seq = out_seq
            if timestamp != self._last_in_ts:
                self._last_out_time = now
            self._last_in_ts = timestamp
            self._last_out_ts = out_ts
        if self._is_vp8:
            payload = self._munge_vp8(payload)
        self.packets_forwarded += 1
        return RewriteResult(out_seq, out_ts, payload, switched)

    def _switch_to(
        self, layer: int, seq: int, ts: int, payload: bytes | bytearray | memoryview, now: float
    ) -> None:
        first = self.current_layer is None and self._last_out_time is None
        self._seq_offset = (self._last_out_seq + 1 - seq) % _SEQ_MOD
        if first:
            gap = 1
        else:
            assert self._last_out_time is not None
            # Advance the clock by the wall time since the last frame so the
            # receiver's jitter buffer sees plausible timing across the switch.
            gap = max(1, int((now - self._last_out_time) * self.clock_rate))
        self._ts_offset = (self._last_out_ts + gap - ts) % _TS_MOD
        self._switch_seq = seq
        self._last_in_ts = ts - 1
        if self._is_vp8:
            desc = parse_vp8_descriptor(payload)
            if desc is not None and desc.picture_id >= 0:
                self._pid_offset = (self._last_out_pid + 1 - desc.picture_id) % _PID_MOD
            if desc is not None and desc.tl0 >= 0:
                self._tl0_offset = (self._last_out_tl0 + 1 - desc.tl0) % _TL0_MOD
        self.current_layer = layer
        self.switches += 1

    def _munge_vp8(self, payload: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        desc = parse_vp8_descriptor(payload)
        if desc is None or (desc.picture_id_size == 0 and desc.tl0_offset < 0):
            return payload
        out = bytearray(payload)
        if desc.picture_id_size == 2:
            pid = (desc.picture_id + self._pid_offset) % _PID_MOD
            out[desc.picture_id_offset] = 0x80 | (pid >> 8)
            out[desc.picture_id_offset + 1] = pid & 0xFF
            self._last_out_pid = pid
        elif desc.picture_id_size == 1:
            pid = (desc.picture_id + self._pid_offset) % 128
            out[desc.picture_id_offset] = pid
            self._last_out_pid = pid
        if desc.tl0_offset >= 0:
            tl0 = (desc.tl0 + self._tl0_offset) % _TL0_MOD
            out[desc.tl0_offset] = tl0
            self._last_out_tl0 = tl0
        return out


class SentPacketCache:
    """The last packets a downtrack sent, by outgoing sequence number, to answer NACKs.

    A fixed ring of slots indexed by ``seq % capacity``: O(1), bounded memory,
    and a slot holding a different sequence number means "too old".
    """

    def __init__(self, capacity: int = 1024, max_age: float = 1.5) -> None:
        if capacity <= 0:
            raise ValueError(f"expected a positive capacity, got {capacity}")
        self._capacity = capacity
        self._max_age = max_age
        self._seqs: list[int] = [-1] * capacity
        self._packets: list[bytes | None] = [None] * capacity
        self._times: list[float] = [0.0] * capacity

    def add(self, seq: int, packet: bytes, now: float) -> None:
        """Remember a sent packet."""
        slot = seq % self._capacity
        self._seqs[slot] = seq
        self._packets[slot] = packet
        self._times[slot] = now

    def get(self, seq: int, now: float) -> bytes | None:
        """The packet sent with ``seq`` if still held and young enough."""
        slot = seq % self._capacity
        if self._seqs[slot] != seq or now - self._times[slot] > self._max_age:
            return None
        return self._packets[slot]

    def clear(self) -> None:
        """Forget everything."""
        self._seqs = [-1] * self._capacity
        self._packets = [None] * self._capacity
