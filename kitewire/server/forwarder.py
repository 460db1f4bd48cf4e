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
from collections import deque
from dataclasses import dataclass

from kitewire.media.keyframe import is_keyframe

__all__ = [
    "PaddingSequenceMap",
    "RewriteResult",
    "RtpRewriter",
    "SentPacketCache",
    "Vp8Descriptor",
    "parse_vp8_descriptor",
]

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_PID_MOD = 1 << 15
_TL0_MOD = 1 << 8


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """Where a VP8 payload descriptor keeps the fields we rewrite (-1 = absent).

    ``picture_id_size`` is 1 (7-bit) or 2 (15-bit) bytes; ``end`` is where the
    rewritable fields stop (0 when there are none), so a rewritten packet is
    the patched ``payload[:end]`` followed by the untouched rest.
    """

    picture_id_offset: int
    picture_id_size: int
    picture_id: int
    tl0_offset: int
    tl0: int
    end: int


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
    end = tl0_offset + 1 if tl0_offset >= 0 else (pid_offset + pid_size if pid_size else 0)
    return Vp8Descriptor(pid_offset, pid_size, pid, tl0_offset, tl0, end)


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
        self.is_vp8 = mime_type.lower().endswith("vp8")
        self.clock_rate = clock_rate
        self.target_layer: int | None = None
        self.current_layer: int | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        # The newest incoming sequence number of the current layer, and how far
        # (unwrapped) it is past the keyframe packet the layer started at: a late
        # packet further back than that is from before the switch.
        self._highest_in_seq = 0
        self._since_switch = 0
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
        """Decide about one incoming packet; None means drop it.

        The convenient form of :meth:`map_packet` plus :meth:`vp8_prefix`; the
        SFU's hot path calls those directly to avoid copies.
        """
        desc = parse_vp8_descriptor(payload) if self.is_vp8 else None
        mapped = self.map_packet(layer, sequence_number, timestamp, payload, desc, now)
        if mapped is None:
            return None
        out_seq, out_ts, switched = mapped
        if desc is not None and desc.end:
            payload = self.vp8_prefix(desc, bytes(payload[: desc.end])) + bytes(payload[desc.end :])
        return RewriteResult(out_seq, out_ts, payload, switched)

    def map_packet(
        self,
        layer: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes | bytearray | memoryview,
        vp8: Vp8Descriptor | None,
        now: float,
    ) -> tuple[int, int, bool] | None:
        """(outgoing seq, outgoing timestamp, switched) for one packet, or None to drop it.

        ``vp8`` is the packet's parsed descriptor (None for other codecs or a
        truncated one); after a non-None answer, rewrite a VP8 descriptor with
        :meth:`vp8_prefix`.
        """
        # Sequence comparisons are written out in this method: it runs per
        # packet per subscriber.
        if layer == self.current_layer:
            delta = (sequence_number - self._highest_in_seq) & 0xFFFF
            if delta == 0 or delta >= 0x8000:
                # A duplicate or a late (reordered, retransmitted) packet. One from
                # before the keyframe we switched at belongs to a frame the receiver
                # never got the start of; a later one fills its hole in the outgoing
                # numbering and leaves the stream's head where it is.
                if ((self._highest_in_seq - sequence_number) & 0xFFFF) > self._since_switch:
                    return None
                self.packets_forwarded += 1
                return (sequence_number + self._seq_offset) & 0xFFFF, (timestamp + self._ts_offset) & 0xFFFFFFFF, False
            self._highest_in_seq = sequence_number
            self._since_switch += delta
            switched = False
        else:
            if layer != self.target_layer:
                return None
            if self.requires_keyframe and not is_keyframe(self.mime_type, payload[:64]):
                return None
            self._switch_to(layer, sequence_number, timestamp, vp8, now)
            switched = True
        out_seq = (sequence_number + self._seq_offset) & 0xFFFF
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        self._last_out_seq = out_seq
        if timestamp != self._last_in_ts:
            self._last_out_time = now
            self._last_in_ts = timestamp
        self._last_out_ts = out_ts
        self.packets_forwarded += 1
        return out_seq, out_ts, switched

    def _switch_to(self, layer: int, seq: int, ts: int, vp8: Vp8Descriptor | None, now: float) -> None:
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
        self._highest_in_seq = seq
        self._since_switch = 0
        self._last_in_ts = ts - 1
        if vp8 is not None and self.is_vp8:
            if vp8.picture_id >= 0:
                self._pid_offset = (self._last_out_pid + 1 - vp8.picture_id) % _PID_MOD
            if vp8.tl0 >= 0:
                self._tl0_offset = (self._last_out_tl0 + 1 - vp8.tl0) % _TL0_MOD
        self.current_layer = layer
        self.switches += 1

    def vp8_prefix(self, desc: Vp8Descriptor, head: bytes) -> bytes:
        """``head`` (the payload's first ``desc.end`` bytes) with picture id and TL0PICIDX
        moved into the outgoing numbering."""
        out = bytearray(head)
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
        return bytes(out)


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


class PaddingSequenceMap:
    """Takes padding-only packets out of one incoming SSRC's sequence space.

    Without RTX, libwebrtc sends its bandwidth probes as padding-only packets
    on the media SSRC; they carry nothing a subscriber needs. Dropping them
    would leave holes in the sequence numbers that receivers NACK for ever, so
    ``map`` renumbers the remaining packets to close the holes: a media packet
    gets its sequence number minus the padding packets dropped before it.
    Late (reordered or retransmitted) packets are numbered by the padding
    packets dropped before *them*, remembered for the last ``history`` drops.
    """

    def __init__(self, history: int = 512) -> None:
        if history <= 0:
            raise ValueError(f"expected a positive history, got {history}")
        self._highest = -1
        self._dropped = 0
        # Incoming sequence numbers of dropped padding packets, oldest first.
        self._drops: deque[int] = deque(maxlen=history)
        self._forgot = False
        self.padding_dropped = 0

    def map(self, sequence_number: int, padding_only: bool) -> int | None:
        """The compacted sequence number of a packet, or None to drop it."""
        highest = self._highest
        if highest < 0 or 0 < ((sequence_number - highest) & 0xFFFF) < 0x8000:
            self._highest = sequence_number
            if padding_only:
                if len(self._drops) == self._drops.maxlen:
                    self._forgot = True
                self._drops.append(sequence_number)
                self._dropped += 1
                self.padding_dropped += 1
                return None
            return (sequence_number - self._dropped) & 0xFFFF
        # A duplicate or a late packet: count the drops that came after it.
        later = 0
        for dropped_seq in reversed(self._drops):
            delta = (dropped_seq - sequence_number) & 0xFFFF
            if delta == 0:
                return None  # a copy of a padding packet already taken out
            if delta >= 0x8000:
                break
            later += 1
        else:
            if self._forgot:
                return None  # older than what we remember: cannot be numbered
        # A late padding packet keeps its slot: the packets after it were
        # numbered with it counted, so it is forwarded (empty) to fill it.
        return (sequence_number - self._dropped + later) & 0xFFFF
