"""Frame assembly from RTP packets of one SSRC: reordering, duplicates,
16-bit sequence wrap-around, NACK tracking and keyframe requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kitewire.media.codecs import normalize_codec
from kitewire.media.keyframe import (
    av1_is_keyframe,
    h264_carries_idr,
    h264_is_keyframe,
    h265_is_keyframe,
    vp8_is_keyframe,
    vp9_is_keyframe,
)
from kitewire.media.packetizer import Depacketizer, create_depacketizer

# Packets further behind the newest one than this are treated as stray, not as
# a sequence number wrap.
_MAX_REORDER = 0x4000
# At most this many sequence numbers of one gap are tracked for NACK; a larger
# gap means the sender restarted or a long outage, and a keyframe is cheaper.
_MAX_TRACKED_GAP = 256
# This many packets in a row from behind the window mean the sender restarted
# its sequence numbers lower down: start over rather than drop it forever.
# Packets still inside the window never count: a burst of retransmissions
# whose originals come in after all is late, not a restart.
_RESTART_AFTER_LATE = 32
# Round-trip time estimate: weight of a new sample (as TCP's smoothed RTT), how
# far apart NACKs of one packet are in RTTs, and how many RTTs of retries a
# missing packet gets before it is given up on (at most _MAX_LOSS_DEADLINE).
_RTT_GAIN = 0.125
_NACK_SPACING_RTTS = 1.5
_DEADLINE_RTTS = 3.0
_MAX_LOSS_DEADLINE = 1.0


@dataclass(frozen=True, slots=True)
class AssembledFrame:
    """One complete encoded frame, ready for the decoder."""

    data: bytes
    """Codec bitstream (VP8 frame, or Annex-B access unit for H264)."""
    timestamp: int
    """RTP timestamp of the frame."""
    keyframe: bool
    first_seq: int
    last_seq: int
    arrival_time: float
    """Arrival time of the frame's last packet (the ``arrival_time`` fed in)."""


@dataclass(slots=True)
class _Packet:
    timestamp: int
    marker: bool
    payload: bytes
    arrival_time: float


@dataclass(slots=True)
class _Missing:
    noticed_at: float
    nacks_sent: int = 0
    next_nack_at: float = 0.0
    last_nack_at: float = 0.0


def _h264_keyframe_start(payload: bytes) -> bool:
    """An H264 payload that can begin a keyframe: SPS, a STAP-A holding
    SPS/IDR, or the first slice of an IDR picture (single NAL or FU-A start)."""
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == 7:
        return True
    if nal_type == 24:
        return h264_is_keyframe(payload)
    if nal_type == 5:
        return bool(payload[1] & 0x80)  # first_mb_in_slice == 0
    if nal_type == 28 and len(payload) >= 3:
        return (payload[1] & 0x9F) == 0x85 and bool(payload[2] & 0x80)
    return False


_KEYFRAME_STARTS: dict[str, Callable[[bytes], bool]] = {
    "VP8": vp8_is_keyframe,
    "H264": _h264_keyframe_start,
    "VP9": vp9_is_keyframe,
    "AV1": av1_is_keyframe,
    "H265": h265_is_keyframe,
}


class FrameAssembler:
    """Jitter buffer for one SSRC; favours latency over smoothness.

    Feed packets with ``push``; each call returns the frames that became
    releasable (complete, and their predecessor was released or given up on).
    Padding-only packets go in too, with an empty payload, so they do not
    look like losses; retransmissions (RTX) go in under their original
    sequence number. Call ``poll`` every few tens of milliseconds: it gives up
    on packets missing for longer than ``loss_deadline`` seconds. ``nack_list``
    tells which sequence numbers to NACK now;
    ``keyframe_request`` tells whether to send a PLI. NACK retries, the
    give-up and repeated keyframe requests follow the round-trip time
    measured from NACK to retransmission (``round_trip_time``): never sooner
    than the configured intervals, later on a slow path. After a loss the
    assembler waits for the next keyframe instead of emitting delta frames
    that depend on what was lost; a complete keyframe further ahead is
    released at once, skipping whatever is still incomplete before it.

    Memory is bounded by ``max_packets`` (a window of sequence numbers behind
    the newest packet). All times are seconds on ``time.monotonic()``'s clock;
    omitted times mean now.
    """

    def __init__(
        self,
        codec: str,
        *,
        loss_deadline: float = 0.12,
        nack_interval: float = 0.02,
        max_nack_retries: int = 10,
        max_packets: int = 1024,
        keyframe_request_interval: float = 0.25,
    ) -> None:
        self._codec = normalize_codec(codec)
        for name, value in (
            ("loss_deadline", loss_deadline),
            ("nack_interval", nack_interval),
            ("keyframe_request_interval", keyframe_request_interval),
        ):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name}: expected a number of seconds >= 0, got {value!r}")
        if not isinstance(max_nack_retries, int) or max_nack_retries < 0:
            raise ValueError(f"max_nack_retries: expected an int >= 0, got {max_nack_retries!r}")
        if not isinstance(max_packets, int) or max_packets < 16:
            raise ValueError(f"max_packets: expected an int >= 16, got {max_packets!r}")
        self.loss_deadline = float(loss_deadline)
        self.nack_interval = float(nack_interval)
        self.max_nack_retries = max_nack_retries
        self.max_packets = max_packets
        self.keyframe_request_interval = float(keyframe_request_interval)
        self.round_trip_time: float | None = None
        """Smoothed time from a packet's only NACK to its arrival (None until measured)."""
        self._depacketizer: Depacketizer = create_depacketizer(self._codec)
        self._is_keyframe_start: Callable[[bytes], bool] = _KEYFRAME_STARTS.get(self._codec, _h264_keyframe_start)

        self._packets: dict[int, _Packet] = {}
        self._missing: dict[int, _Missing] = {}
        self._keyframe_starts: set[int] = set()
        self._highest: int | None = None  # newest extended sequence number seen
        # In sync: first seq of the next frame to release. Waiting: nothing
        # below it matters any more.
        self._cursor = 0
        self._waiting = True
        self._keyframe_due: float | None = None
        self._first_arrival: float | None = None
        self._released_any = False  # since the (re)start of the sequence
        self._late_run = 0

        self.frames_released = 0
        """Frames returned so far."""
        self.frames_dropped = 0
        """Frames discarded (incomplete in time, undecodable, or delta frames while waiting for a keyframe)."""
        self.packets_late = 0
        """Packets that arrived after their frame was released or given up."""
        self.packets_duplicate = 0
        """Packets received twice."""

    # -- input ---------------------------------------------------------------

    def _unwrap(self, seq: int) -> int:
        highest = self._highest
        if highest is None:
            return seq
        delta = (seq - highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return highest + delta

    def push(
        self, seq: int, timestamp: int, marker: bool, payload: bytes, arrival_time: float | None = None
    ) -> list[AssembledFrame]:
        """Add one RTP packet; return frames now ready, in decode order.

        ``payload`` is the RTP payload (padding removed; empty for a
        padding-only packet). Duplicates and packets older than what was
        already released are ignored.
        """
        if not isinstance(seq, int) or not 0 <= seq <= 0xFFFF:
            raise ValueError(f"seq: expected an int 0..65535, got {seq!r}")
        if not isinstance(timestamp, int) or not 0 <= timestamp <= 0xFFFFFFFF:
            raise ValueError(f"timestamp: expected an int 0..2**32-1, got {timestamp!r}")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ValueError(f"payload: expected bytes, got {type(payload).__name__}")
        now = time.monotonic() if arrival_time is None else arrival_time
        # An empty payload is a padding-only packet (bandwidth probing): it
        # carries no media but still fills its place in the sequence.
        payload = bytes(payload)

        ext = self._unwrap(seq)
        highest = self._highest
        if highest is None:
            self._highest = highest = ext
            self._cursor = ext
            self._first_arrival = now
            self._keyframe_due = now + self.loss_deadline
        elif ext > highest:
            gap_start = max(highest + 1, ext - _MAX_TRACKED_GAP)
            for missing in range(gap_start, ext):
                self._missing[missing] = _Missing(noticed_at=now, next_nack_at=now)
            self._highest = highest = ext
        elif highest - ext > _MAX_REORDER:
            return self._late(seq, timestamp, marker, payload, now)

        if ext < self._cursor:
            if not self._released_any and self._waiting and highest - ext < self.max_packets:
                # Reordering at the very start: nothing was released yet, so
                # an earlier packet is still welcome, and what lies between it
                # and the packets already here is missing, not given up.
                for missing in range(ext + 1, min(self._cursor, ext + 1 + _MAX_TRACKED_GAP)):
                    if missing not in self._packets:
                        self._missing.setdefault(missing, _Missing(noticed_at=now, next_nack_at=now))
                self._cursor = ext
            else:
                self._note_recovered(self._missing.pop(ext, None), now)
                return self._late(seq, timestamp, marker, payload, now)
        self._late_run = 0
        if ext in self._packets:
            self.packets_duplicate += 1
            return self._release(now)

        self._note_recovered(self._missing.pop(ext, None), now)
        self._packets[ext] = _Packet(timestamp, bool(marker), payload, now)
        if payload and self._is_keyframe_start(payload):
            self._keyframe_starts.add(ext)

        floor = highest - self.max_packets + 1
        if self._cursor < floor:
            # Memory cap: the oldest packets go; a frame still being waited for is lost.
            if not self._waiting:
                self._enter_waiting(now)
            self._advance_cursor(floor, discarding=True)
        return self._release(now)

    def _note_recovered(self, missing: _Missing | None, now: float) -> None:
        """A missing packet arrived: when it was NACKed exactly once, the time
        since that NACK is a round-trip sample (several NACKs would make it
        ambiguous which one was answered)."""
        if missing is None or missing.nacks_sent != 1:
            return
        sample = now - missing.last_nack_at
        if sample < 0:
            return
        rtt = self.round_trip_time
        self.round_trip_time = sample if rtt is None else rtt + _RTT_GAIN * (sample - rtt)

    @property
    def effective_loss_deadline(self) -> float:
        """Seconds a missing packet is waited for: ``loss_deadline``, or a few
        round trips where those are longer (bounded at one second)."""
        rtt = self.round_trip_time
        if rtt is None:
            return self.loss_deadline
        return max(self.loss_deadline, min(_MAX_LOSS_DEADLINE, _DEADLINE_RTTS * rtt + self.nack_interval))

    def _nack_spacing(self) -> float:
        rtt = self.round_trip_time
        return self.nack_interval if rtt is None else max(self.nack_interval, _NACK_SPACING_RTTS * rtt)

    def _late(self, seq: int, timestamp: int, marker: bool, payload: bytes, now: float) -> list[AssembledFrame]:
        self.packets_late += 1
        highest = self._highest
        if highest is not None and highest - self._unwrap(seq) < self.max_packets:
            return self._release(now)
        self._late_run += 1
        if self._late_run < _RESTART_AFTER_LATE:
            return self._release(now)
        # The sender's sequence numbers jumped backwards for good.
        self._packets.clear()
        self._missing.clear()
        self._keyframe_starts.clear()
        self._highest = None
        self._waiting = True
        self._keyframe_due = None
        self._released_any = False
        self._late_run = 0
        return self.push(seq, timestamp, marker, payload, now)

    # -- timers / feedback -----------------------------------------------------

    def poll(self, now: float | None = None) -> list[AssembledFrame]:
        """Give up on packets missing for longer than ``loss_deadline`` and return
        frames that became releasable because of it."""
        return self._release(time.monotonic() if now is None else now)

    def nack_list(self, now: float | None = None) -> list[int]:
        """Sequence numbers to NACK now (each at most ``max_nack_retries`` times,
        spaced by ``nack_interval`` or one and a half round trips, whichever is longer)."""
        if now is None:
            now = time.monotonic()
        spacing = self._nack_spacing()
        relevant_from = self._cursor
        if self._waiting and self._keyframe_starts:
            # Only what follows the newest keyframe start can still help.
            relevant_from = max(relevant_from, max(self._keyframe_starts))
        due: list[int] = []
        for ext, missing in self._missing.items():
            # Entries whose retries are used up stay: their age still drives the give-up.
            if ext < relevant_from or missing.nacks_sent >= self.max_nack_retries:
                continue
            if now >= missing.next_nack_at:
                missing.nacks_sent += 1
                missing.last_nack_at = now
                missing.next_nack_at = now + spacing
                due.append(ext & 0xFFFF)
        return due

    def keyframe_request(self, now: float | None = None) -> bool:
        """True when a PLI should be sent now (rate-limited by ``keyframe_request_interval``,
        or two round trips where that is longer: a keyframe cannot come back sooner)."""
        if now is None:
            now = time.monotonic()
        if not self._waiting or self._keyframe_due is None or now < self._keyframe_due:
            return False
        rtt = self.round_trip_time or 0.0
        self._keyframe_due = now + max(self.keyframe_request_interval, 2 * rtt)
        return True

    def request_keyframe(self) -> None:
        """Tell the assembler the decoder needs a keyframe: delta frames are
        held back until one arrives and ``keyframe_request`` becomes True."""
        self._enter_waiting(None)

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while delta frames are being dropped until the next keyframe."""
        return self._waiting

    def __len__(self) -> int:
        """Packets currently buffered."""
        return len(self._packets)

    # -- internals -------------------------------------------------------------

    def _enter_waiting(self, now: float | None) -> None:
        if not self._waiting:
            self._waiting = True
            self._keyframe_due = None
        if self._keyframe_due is None or now is None:
            # Ask right away: the caller learns it on its next keyframe_request().
            self._keyframe_due = float("-inf")

    def _advance_cursor(self, new_cursor: int, *, discarding: bool = False) -> None:
        """Forget everything below ``new_cursor``; ``discarding`` counts the
        frames whose packets are thrown away unreleased."""
        old = self._cursor
        if new_cursor <= old:
            return
        packets = self._packets
        discarded: set[int] = set()
        if new_cursor - old <= len(packets) + len(self._missing):
            for ext in range(old, new_cursor):
                packet = packets.pop(ext, None)
                if discarding and packet is not None:
                    discarded.add(packet.timestamp)
                self._missing.pop(ext, None)
        else:
            for ext in [key for key in packets if key < new_cursor]:
                if discarding:
                    discarded.add(packets[ext].timestamp)
                del packets[ext]
            for ext in [key for key in self._missing if key < new_cursor]:
                del self._missing[ext]
        self.frames_dropped += len(discarded)
        if self._keyframe_starts:
            self._keyframe_starts = {ext for ext in self._keyframe_starts if ext >= new_cursor}
        self._cursor = new_cursor

    def _frame_end(self, start: int) -> int | None:
        """Last seq of the frame starting at ``start`` if all its packets are here."""
        packets = self._packets
        packet = packets.get(start)
        if packet is None:
            return None
        timestamp = packet.timestamp
        ext = start
        while True:
            if packet.marker:
                return ext
            following = packets.get(ext + 1)
            if following is None:
                return None
            if following.timestamp != timestamp or not following.payload:
                # Marker lost or not set by the sender: a timestamp change or
                # padding after it still ends the frame.
                return ext
            ext += 1
            packet = following

    def _first_gap(self, start: int) -> int:
        ext = start
        packets = self._packets
        while ext in packets:
            ext += 1
        return ext

    def _jump_to_complete_keyframe(self, now: float) -> bool:
        for start in sorted(self._keyframe_starts):
            if start <= self._cursor and not self._waiting:
                continue
            if self._codec == "H264" and self._may_lack_parameter_sets(start, now):
                continue
            end = self._frame_end(start)
            if end is not None:
                if self._codec == "H264" and not self._has_idr(start, end):
                    # Parameter sets in front of a P slice: not a place to start decoding.
                    self._keyframe_starts.discard(start)
                    continue
                if start > self._cursor:
                    # Everything before this keyframe is no longer needed.
                    self._advance_cursor(start, discarding=True)
                self._waiting = False
                self._keyframe_due = None
                return True
        return False

    def _after_droppable_frame(self, start: int) -> int | None:
        """When the incomplete frame at ``start`` is marked non-reference (VP8
        N bit, H264 nal_ref_idc 0) and both its last packet and the first
        packet of the next frame are here, the seq of that next frame.

        Requiring the next frame to follow the marker packet directly makes
        sure no other (possibly referenced) frame vanished in between.
        """
        packets = self._packets
        head = packets.get(start)
        if head is None or not head.payload or not self._non_reference(head.payload):
            return None
        if not self._depacketizer.is_frame_start(head.payload):
            return None
        for ext in sorted(key for key in packets if key > start):
            packet = packets[ext]
            if packet.timestamp != head.timestamp:
                return None
            if packet.marker:
                following = packets.get(ext + 1)
                if following is None or not following.payload:
                    return None
                if following.timestamp == head.timestamp or not self._depacketizer.is_frame_start(following.payload):
                    return None
                return ext + 1
        return None

    def _non_reference(self, payload: bytes) -> bool:
        if self._codec == "VP8":
            return bool(payload[0] & 0x20)
        if self._codec != "H264":
            return False  # VP9, AV1, H265: no cheap per-packet non-reference flag
        # Only a slice speaks for the picture: an SEI or AUD in front of it has
        # nal_ref_idc 0 even when the picture is a reference.
        nal_type = payload[0] & 0x1F
        if nal_type == 28 and len(payload) >= 2:
            nal_type = payload[1] & 0x1F
        return nal_type == 1 and not payload[0] & 0x60

    def _has_idr(self, start: int, end: int) -> bool:
        packets = self._packets
        return any(h264_carries_idr(packets[ext].payload) for ext in range(start, end + 1))

    def _may_lack_parameter_sets(self, start: int, now: float) -> bool:
        """An IDR slice whose predecessor is still being retransmitted (or, at
        start-up, not seen yet) may be missing the SPS/PPS sent just before
        it: wait for that, up to the loss deadline, rather than start
        decoding without them."""
        first_type = self._packets[start].payload[0] & 0x1F
        if first_type in (7, 24):  # SPS, or STAP-A holding the parameter sets
            return False
        if start - 1 in self._packets:
            return False
        missing = self._missing.get(start - 1)
        if missing is not None:
            return now - missing.noticed_at <= self.effective_loss_deadline
        if not self._released_any and self._first_arrival is not None:
            # Before anything was released the predecessor may simply not have
            # arrived yet: packets can come in any order at the very start.
            return now - self._first_arrival <= self.loss_deadline
        return False

    def _release(self, now: float) -> list[AssembledFrame]:
        released: list[AssembledFrame] = []
        while True:
            if self._waiting and not self._jump_to_complete_keyframe(now):
                break
            start = self._cursor
            head = self._packets.get(start)
            if head is not None and not head.payload:
                self._advance_cursor(start + 1)  # padding between frames
                continue
            end = self._frame_end(start)
            if end is None:
                if self._jump_to_complete_keyframe(now) and self._cursor != start:
                    continue
                gap = self._first_gap(start)
                missing = self._missing.get(gap)
                untracked = missing is None and self._highest is not None and gap < self._highest
                if untracked or (missing is not None and now - missing.noticed_at > self.effective_loss_deadline):
                    following = self._after_droppable_frame(start)
                    if following is not None:
                        # Nothing predicts from the broken frame: skip it, stay in sync.
                        self._advance_cursor(following, discarding=True)
                        continue
                    if gap == start:
                        # The frame at the cursor lost its first packet: it is gone
                        # even though none of its packets is buffered to count.
                        self.frames_dropped += 1
                    self._enter_waiting(now)
                    self._advance_cursor(gap + 1, discarding=True)
                    continue
                break
            frame = self._emit(start, end)
            self._advance_cursor(end + 1)
            if frame is None:
                self.frames_dropped += 1  # undecodable payloads
                self._enter_waiting(now)
                continue
            released.append(frame)
        return released

    def _emit(self, start: int, end: int) -> AssembledFrame | None:
        packets = self._packets
        payloads = [packets[ext].payload for ext in range(start, end + 1)]
        try:
            data = self._depacketizer.depacketize(payloads)
        except ValueError:
            return None
        if self._codec == "H264":
            is_key = any(h264_carries_idr(payload) for payload in payloads)
        elif self._codec == "H265":
            is_key = any(h265_is_keyframe(payload) for payload in payloads)
        else:
            is_key = self._depacketizer.is_keyframe(payloads[0])
        last = packets[end]
        self.frames_released += 1
        self._released_any = True
        return AssembledFrame(
            data=data,
            timestamp=last.timestamp,
            keyframe=is_key,
            first_seq=start & 0xFFFF,
            last_seq=end & 0xFFFF,
            arrival_time=last.arrival_time,
        )
