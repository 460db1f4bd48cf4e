"""Transport-wide congestion control feedback: arrival times recorded per packet, built into feedback packets."""

from __future__ import annotations

import logging

from .rtcp import build_transport_cc

__all__ = ["TwccRecorder"]

logger = logging.getLogger(__name__)


class TwccRecorder:
    """Remembers arrival times of transport-wide sequence numbers until the next feedback."""

    # Bound memory and feedback size: a feedback never covers more than this span.
    MAX_SPAN = 2000

    def __init__(self) -> None:
        self._arrivals: dict[int, int] = {}
        self._last_ext: int | None = None
        self._next_base: int | None = None
        self._max_ext = -1
        self._feedback_count = 0
        self._reported_any = False
        self.media_ssrc = 0

    def record(self, seq: int, arrival_us: int, media_ssrc: int) -> None:
        if self._last_ext is None:
            ext = seq
        else:
            # Extended numbers may go below zero: a packet from before the wrap
            # that arrives after the first one seen.
            delta = (seq - self._last_ext) & 0xFFFF
            ext = self._last_ext + delta if delta < 0x8000 else self._last_ext + delta - 0x10000
        if self._last_ext is None or ext > self._last_ext:
            self._last_ext = ext
        if self._next_base is None:
            self._next_base = ext
        if ext < self._next_base:
            if self._reported_any or self._max_ext - ext >= self.MAX_SPAN:
                return  # already reported
            self._next_base = ext  # reordered at the very start: nothing was reported yet
        self._arrivals[ext] = arrival_us
        if ext > self._max_ext:
            self._max_ext = ext
        self.media_ssrc = media_ssrc
        if len(self._arrivals) > 4 * self.MAX_SPAN:
            # Nobody is draining us (no feedback timer); forget the oldest.
            for old in sorted(self._arrivals)[: len(self._arrivals) - self.MAX_SPAN]:
                del self._arrivals[old]

    def build(self, sender_ssrc: int) -> list[bytes]:
        if not self._arrivals or self._next_base is None:
            return []
        out: list[bytes] = []
        base = max(self._next_base, self._max_ext - self.MAX_SPAN + 1)
        while base <= self._max_ext:
            end = min(self._max_ext, base + 255)
            packets: list[tuple[int, int | None]] = []
            first_arrival: int | None = None
            for ext in range(base, end + 1):
                arrival = self._arrivals.pop(ext, None)
                if arrival is not None and first_arrival is None:
                    first_arrival = arrival
                packets.append((ext & 0xFFFF, arrival))
            if first_arrival is not None:
                # Trim trailing losses: they may still arrive and be reported next time.
                while packets and packets[-1][1] is None:
                    packets.pop()
                try:
                    out.append(
                        build_transport_cc(
                            sender_ssrc,
                            self.media_ssrc,
                            base & 0xFFFF,
                            first_arrival,
                            self._feedback_count,
                            packets,
                        )
                    )
                    self._feedback_count = (self._feedback_count + 1) & 0xFF
                except ValueError:
                    logger.debug("transport-cc feedback skipped", exc_info=True)
            base = end + 1
        self._next_base = self._max_ext + 1
        self._reported_any = True
        self._arrivals.clear()
        return out
