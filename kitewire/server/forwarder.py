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

import functools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kitewire.media.keyframe import is_keyframe
from kitewire.media.vp8_descriptor import Payload, read_vp8_descriptor
from kitewire.media.vp9_descriptor import read_vp9_descriptor
from kitewire.transport.rtp import initial_sequence_number

__all__ = [
    "PaddingSequenceMap",
    "PictureIds",
    "RewriteResult",
    "RtpRewriter",
    "UplinkGaps",
]

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_PID_MOD = 1 << 15
_TL0_MOD = 1 << 8


class PictureIds(Protocol):
    """Where a payload descriptor numbers its pictures: VP8's (RFC 7741) and VP9's (RFC 9628) alike."""

    @property
    def picture_id(self) -> int | None: ...
    @property
    def picture_id_offset(self) -> int: ...
    @property
    def picture_id_size(self) -> int: ...
    @property
    def tl0_pic_idx(self) -> int | None: ...
    @property
    def tl0_pic_idx_offset(self) -> int: ...
    @property
    def end(self) -> int: ...


@functools.lru_cache(maxsize=32)
def picture_id_reader(mime_type: str) -> Callable[[Payload], PictureIds | None] | None:
    """The descriptor reader of a codec that numbers its pictures (VP8, VP9), None for others.

    Looked up per packet, so cached by the mime type's spelling.
    """
    lowered = mime_type.lower()
    if lowered.endswith("vp8"):
        return read_vp8_descriptor
    if lowered.endswith("vp9"):
        return read_vp9_descriptor
    return None


def read_picture_ids(mime_type: str, payload: Payload) -> PictureIds | None:
    """The picture numbering of a VP8 or VP9 payload (None for other codecs or a truncated descriptor)."""
    reader = picture_id_reader(mime_type)
    return reader(payload) if reader is not None else None


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
        #: VP8 and VP9 number their pictures: renumbered across switches (``picture_id_prefix``).
        self.rewrites_picture_ids = mime_type.lower().endswith(("vp8", "vp9"))
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
        # Whether the last packet mapped was the stream's newest (not a late one).
        self._advanced = False
        # Outgoing state: start at random points, as any RTP sender does.
        self._last_out_seq = initial_sequence_number()
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
    def last_sequence_number(self) -> int:
        """The newest outgoing sequence number (the random start before the first packet)."""
        return self._last_out_seq

    @property
    def timestamp_offset(self) -> int:
        """What is added (mod 2**32) to the current layer's incoming RTP timestamps."""
        return self._ts_offset

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

        The convenient form of :meth:`map_packet` plus :meth:`picture_id_prefix`; the
        SFU's hot path calls those directly to avoid copies.
        """
        desc = read_picture_ids(self.mime_type, payload) if self.rewrites_picture_ids else None
        mapped = self.map_packet(layer, sequence_number, timestamp, payload, desc, now)
        if mapped is None:
            return None
        out_seq, out_ts, switched = mapped
        if desc is not None and desc.end:
            payload = self.picture_id_prefix(desc, bytes(payload[: desc.end])) + bytes(payload[desc.end :])
        return RewriteResult(out_seq, out_ts, payload, switched)

    def map_packet(
        self,
        layer: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes | bytearray | memoryview,
        pictures: PictureIds | None,
        now: float,
    ) -> tuple[int, int, bool] | None:
        """(outgoing seq, outgoing timestamp, switched) for one packet, or None to drop it.

        ``pictures`` is the packet's parsed VP8 or VP9 descriptor (None for other
        codecs or a truncated one); after a non-None answer, renumber it with
        :meth:`picture_id_prefix`.
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
                self._advanced = False
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
            self._switch_to(layer, sequence_number, timestamp, pictures, now)
            switched = True
        out_seq = (sequence_number + self._seq_offset) & 0xFFFF
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        self._last_out_seq = out_seq
        if timestamp != self._last_in_ts:
            self._last_out_time = now
            self._last_in_ts = timestamp
        self._last_out_ts = out_ts
        self._advanced = True
        self.packets_forwarded += 1
        return out_seq, out_ts, switched

    def _switch_to(self, layer: int, seq: int, ts: int, pictures: PictureIds | None, now: float) -> None:
        first = self.current_layer is None and self._last_out_time is None
        self._seq_offset = (self._last_out_seq + 1 - seq) % _SEQ_MOD
        if first:
            gap = 1
        else:
            assert self._last_out_time is not None
            # Advance the clock by the wall time since the last frame so the
            # receiver's jitter buffer sees plausible timing across the switch;
            # at most just under half the 32-bit space (6.6 h at 90 kHz), beyond
            # which the receiver would take it for a step back.
            gap = min(max(1, int((now - self._last_out_time) * self.clock_rate)), _TS_MOD // 2 - 1)
        self._ts_offset = (self._last_out_ts + gap - ts) % _TS_MOD
        self._highest_in_seq = seq
        self._since_switch = 0
        self._last_in_ts = ts - 1
        if pictures is not None and self.rewrites_picture_ids:
            if pictures.picture_id is not None:
                self._pid_offset = (self._last_out_pid + 1 - pictures.picture_id) % _PID_MOD
            if pictures.tl0_pic_idx is not None:
                self._tl0_offset = (self._last_out_tl0 + 1 - pictures.tl0_pic_idx) % _TL0_MOD
        self.current_layer = layer
        self.switches += 1

    def picture_id_prefix(self, desc: PictureIds, head: bytes) -> bytes:
        """``head`` (the payload's first ``desc.end`` bytes) with picture id and TL0PICIDX
        moved into the outgoing numbering; call it right after :meth:`map_packet` forwarded
        the packet."""
        out = bytearray(head)
        # Only a packet that advanced the stream (not a late one) moves the last
        # picture id and TL0PICIDX: the next switch continues from the newest.
        advanced = self._advanced
        picture_id = desc.picture_id
        if picture_id is not None:
            if desc.picture_id_size == 2:
                pid = (picture_id + self._pid_offset) & 0x7FFF
                out[desc.picture_id_offset] = 0x80 | (pid >> 8)
                out[desc.picture_id_offset + 1] = pid & 0xFF
            else:
                pid = (picture_id + self._pid_offset) & 0x7F
                out[desc.picture_id_offset] = pid
            if advanced:
                self._last_out_pid = pid
        tl0_in = desc.tl0_pic_idx
        if tl0_in is not None:
            tl0 = (tl0_in + self._tl0_offset) & 0xFF
            out[desc.tl0_pic_idx_offset] = tl0
            if advanced:
                self._last_out_tl0 = tl0
        return bytes(out)


class PaddingSequenceMap:
    """Takes padding-only packets out of one incoming SSRC's sequence space.

    Without RTX, libwebrtc sends its bandwidth probes as padding-only packets
    on the media SSRC; they carry nothing a subscriber needs. Dropping them
    would leave holes in the sequence numbers that receivers NACK for ever, so
    ``map`` renumbers the remaining packets to close the holes: a media packet
    gets its sequence number minus the padding packets dropped before it.
    Late (reordered or retransmitted) packets are numbered by the padding
    packets dropped before *them*, remembered for the last ``history`` drops.

    Drops are remembered by extended (unwrapped) sequence number: a drop from
    longer ago than half the 16-bit space must not look like a recent one.
    """

    def __init__(self, history: int = 512) -> None:
        if history <= 0:
            raise ValueError(f"expected a positive history, got {history}")
        self._highest = -1  # extended; -1 before the first packet
        self._dropped = 0
        # Extended sequence numbers of dropped padding packets, oldest first.
        self._drops: deque[int] = deque(maxlen=history)
        # The newest drop no longer remembered.
        self._newest_forgotten: int | None = None
        self.padding_dropped = 0

    def map(self, sequence_number: int, padding_only: bool) -> int | None:
        """The compacted sequence number of a packet, or None to drop it."""
        highest = self._highest
        delta = (sequence_number - highest) & 0xFFFF
        if highest < 0 or 0 < delta < 0x8000:
            highest = self._highest = sequence_number if highest < 0 else highest + delta
            if padding_only:
                drops = self._drops
                if len(drops) == drops.maxlen:
                    self._newest_forgotten = drops[0]
                drops.append(highest)
                self._dropped += 1
                self.padding_dropped += 1
                return None
            return (sequence_number - self._dropped) & 0xFFFF
        # A duplicate or a late packet: count the drops that came after it.
        extended = highest - ((highest - sequence_number) & 0xFFFF)
        later = 0
        for dropped in reversed(self._drops):
            if dropped < extended:
                break
            if dropped == extended:
                return None  # a copy of a padding packet already taken out
            later += 1
        else:
            forgotten = self._newest_forgotten
            if forgotten is not None and forgotten >= extended:
                return None  # drops after it were forgotten: it cannot be numbered
        # A late padding packet keeps its slot: the packets after it were
        # numbered with it counted, so it is forwarded (empty) to fill it.
        return (sequence_number - self._dropped + later) & 0xFFFF


class UplinkGaps:
    """Which sequence numbers one incoming SSRC skipped, to NACK them to the publisher.

    ``missing(seq)`` is told every arriving packet. A jump forward by at most
    ``max_gap`` + 1 returns the numbers skipped (lost, or merely late: a NACK
    for a packet about to arrive costs one retransmission); a longer jump is
    not asked for. A packet up to ``max_reorder`` behind the newest is a late
    one (a reordered or retransmitted packet); further behind, the numbering
    restarted and continues from it.
    """

    __slots__ = ("_highest", "max_gap", "max_reorder")

    def __init__(self, max_gap: int = 64, max_reorder: int = 0x1000) -> None:
        if not 0 < max_gap < max_reorder < 0x8000:
            raise ValueError(f"expected 0 < max_gap < max_reorder < 32768, got {max_gap} and {max_reorder}")
        self.max_gap = max_gap
        self.max_reorder = max_reorder
        self._highest = -1

    @property
    def highest(self) -> int:
        """The newest sequence number seen (-1 before the first)."""
        return self._highest

    def missing(self, sequence_number: int) -> tuple[int, ...]:
        """The sequence numbers skipped right before this packet, oldest first (usually none)."""
        highest = self._highest
        delta = (sequence_number - highest) & 0xFFFF
        if highest < 0 or (delta >= 0x8000 and 0x10000 - delta > self.max_reorder):
            self._highest = sequence_number
            return ()
        if delta == 0 or delta >= 0x8000:
            return ()
        self._highest = sequence_number
        if delta == 1 or delta > self.max_gap + 1:
            return ()
        return tuple((highest + offset) & 0xFFFF for offset in range(1, delta))
