"""Audio jitter buffer: RTP packets of one audio SSRC in, in-order packets and gaps out.

Packets that arrive in order leave at once (no added delay on a clean path). A
missing sequence number holds the packets behind it for the *target delay*: three
times the measured interarrival jitter (RFC 3550 section 6.4.1, in seconds) plus
a floor, capped. A packet that arrives within that time is put back in order;
after it the hole is declared lost and reported as a :class:`Gap` the decoder
conceals. When nothing at all arrives for a frame's time plus the target delay,
a Gap is reported *ahead* of the packet (up to ``max_fill`` seconds), so what the
reader hears never stops for longer than that: a packet that then turns up after
all is dropped (it was concealed already), and a later hole or pause is
shortened by what was filled. A jump in RTP time without a hole in the sequence
(DTX, a sender that paused) is a gap of silence. Sequence numbers and timestamps are unwrapped
relative to the next expected packet, so streams run across their wraps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AudioJitterBuffer", "Gap", "Packet"]

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32


@dataclass(frozen=True)
class Packet:
    """A packet to decode, in order."""

    timestamp: int
    payload: bytes


@dataclass(frozen=True)
class Gap:
    """``samples`` of the stream (per channel) with no packet before the next one.

    ``lost`` is True when packets were lost (conceal them), False for a pause in
    RTP time (DTX: play silence).
    """

    samples: int
    lost: bool


def _signed(delta: int, modulus: int) -> int:
    delta %= modulus
    return delta - modulus if delta >= modulus // 2 else delta


class AudioJitterBuffer:
    """Reorders one SSRC's packets and reports losses after a jitter-sized wait.

    ``frame_samples(payload)`` gives a packet's duration in clock ticks (for Opus,
    :func:`kitewire.media.opus.opus_frame_samples`).
    """

    def __init__(
        self,
        frame_samples: Callable[[bytes], int],
        *,
        clock_rate: int = 48_000,
        min_delay: float = 0.02,
        max_delay: float = 0.2,
        max_packets: int = 64,
        max_gap: float = 1.0,
        max_fill: float = 0.2,
    ) -> None:
        if not callable(frame_samples):
            raise ValueError("expected frame_samples to be a callable(payload) -> samples")
        if not 0 <= min_delay <= max_delay:
            raise ValueError(f"expected 0 <= min_delay <= max_delay, got {min_delay} and {max_delay}")
        if max_packets < 2:
            raise ValueError(f"expected max_packets >= 2, got {max_packets}")
        self._frame_samples = frame_samples
        self._clock_rate = clock_rate
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._max_packets = max_packets
        self._max_gap_samples = int(max_gap * clock_rate)
        # extended sequence number -> (timestamp, payload, arrival)
        self._held: dict[int, tuple[int, bytes, float]] = {}
        self._next_seq: int | None = None  # extended
        self._next_ts: int | None = None
        self._last_transit: float | None = None
        # samples concealed ahead of the packets (no packet came in time)
        self._filled = 0
        self._max_fill = int(max_fill * clock_rate)
        # the arrival-clock time up to which the reader has audio (packets and concealment)
        self._covered_until: float | None = None
        self._last_duration = 0
        self.jitter = 0.0
        self.packets_lost = 0
        self.packets_late = 0
        self.packets_duplicate = 0

    @property
    def target_delay(self) -> float:
        """Seconds a hole is waited for before it counts as lost."""
        return min(self._max_delay, max(self._min_delay, 3.0 * self.jitter + 0.005))

    def __len__(self) -> int:
        return len(self._held)

    def push(self, sequence_number: int, timestamp: int, payload: bytes, now: float) -> list[Packet | Gap]:
        """Take in one packet (arrival time ``now`` in seconds); returns what is ready to decode."""
        if not payload:
            return self.pop_ready(now)
        self._measure_jitter(timestamp, now)
        if self._next_seq is None:
            self._next_seq = sequence_number
            self._next_ts = timestamp
        extended = self._next_seq + _signed(sequence_number - self._next_seq, _SEQ_MOD)
        if extended < self._next_seq:
            self.packets_late += 1
        elif extended in self._held:
            self.packets_duplicate += 1
        elif extended - self._next_seq >= 4 * self._max_packets:
            # far ahead: the sender restarted or we missed a long stretch; start over here
            self._held.clear()
            self._next_seq, self._next_ts = extended, timestamp
            self._held[extended] = (timestamp, payload, now)
        else:
            self._held[extended] = (timestamp, payload, now)
        return self.pop_ready(now)

    def _measure_jitter(self, timestamp: int, now: float) -> None:
        transit = now - timestamp / self._clock_rate
        if self._last_transit is not None:
            difference = transit - self._last_transit
            # a timestamp wrap shows up as a jump of 2^32 ticks: fold it away
            wrap = _TS_MOD / self._clock_rate
            if difference > wrap / 2:
                difference -= wrap
            elif difference < -wrap / 2:
                difference += wrap
            if abs(difference) < 1.0:
                self.jitter += (abs(difference) - self.jitter) / 16.0
        self._last_transit = transit

    def pop_ready(self, now: float, *, conceal_ahead: bool = True) -> list[Packet | Gap]:
        """Packets now in order, with a Gap before any packet that follows a hole or a pause.

        ``conceal_ahead=False`` holds back concealment for packets that have not come
        (a caller that knows its own clock stalled lets the packets waiting behind the
        stall arrive first)."""
        out: list[Packet | Gap] = []
        if self._next_seq is None:
            return out
        while self._held:
            entry = self._held.get(self._next_seq)
            if entry is None:
                oldest = min(self._held)
                waited = now - min(arrival for _, _, arrival in self._held.values())
                hole = self._ahead(self._held[oldest][0])
                covered = 0 < hole <= self._filled
                if not covered and waited < self.target_delay and len(self._held) < self._max_packets:
                    break
                self.packets_lost += oldest - self._next_seq
                self._next_seq = oldest
                entry = self._held[oldest]
                lost = True
            else:
                lost = False
            timestamp, payload, _ = self._held.pop(self._next_seq)
            self._next_seq += 1
            duration = self._duration(payload)
            if not lost and self._filled >= duration > 0 and self._ahead(timestamp) == 0:
                # it came after its place was concealed: play on from the concealment
                self._filled -= duration
                self._next_ts = (timestamp + duration) % _TS_MOD
                self.packets_late += 1
                continue
            self._emit(out, timestamp, payload, duration, lost)
            start = now if self._covered_until is None else max(self._covered_until, now)
            self._covered_until = start + duration / self._clock_rate
        if conceal_ahead:
            self._fill_ahead(out, now)
        return out

    def _fill_ahead(self, out: list[Packet | Gap], now: float) -> None:
        if self._held or self._covered_until is None or self._last_duration <= 0:
            return
        while self._filled + self._last_duration <= self._max_fill:
            if now < self._covered_until + self.target_delay:
                return
            out.append(Gap(self._last_duration, lost=True))
            self._filled += self._last_duration
            self._covered_until += self._last_duration / self._clock_rate

    def _ahead(self, timestamp: int) -> int:
        expected = self._next_ts if self._next_ts is not None else timestamp
        return _signed(timestamp - expected, _TS_MOD)

    def _duration(self, payload: bytes) -> int:
        try:
            return int(self._frame_samples(payload))
        except ValueError:
            return 0

    def _emit(self, out: list[Packet | Gap], timestamp: int, payload: bytes, duration: int, lost: bool) -> None:
        ahead = self._ahead(timestamp)
        if 0 < ahead <= self._max_gap_samples:
            # what was concealed ahead already covers part (or all) of the hole
            remaining = ahead - self._filled
            self._filled = max(0, -remaining)
            if remaining > 0:
                out.append(Gap(remaining, lost))
        elif ahead > self._max_gap_samples:
            self._filled = 0
        if duration > 0:
            self._last_duration = duration
        if ahead >= 0 or ahead < -self._max_gap_samples:
            self._next_ts = (timestamp + duration) % _TS_MOD
        out.append(Packet(timestamp, payload))
