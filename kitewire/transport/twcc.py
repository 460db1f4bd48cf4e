"""Transport-wide congestion control feedback: arrival times recorded per packet, built into feedback packets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .rtcp import build_transport_cc
from .rtp import URI_TRANSPORT_CC, RtpHeader

if TYPE_CHECKING:
    from .transceiver import Transceiver

__all__ = ["TransportCcGenerator", "TwccRecorder"]

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


class TransportCcGenerator:
    """Transport-wide CC feedback: records the transport-wide sequence number of every packet, reports them."""

    def __init__(self, *, rtcp_ssrc: int, interval: float) -> None:
        self._rtcp_ssrc = rtcp_ssrc
        self.interval = interval
        self.recorder = TwccRecorder()
        #: The negotiated transport-wide sequence number extension id (None: not negotiated).
        self.ext_id: int | None = None

    def negotiated(self, transceivers: Sequence[Transceiver]) -> None:
        """Take the extension id (one per bundle) from the live transceivers."""
        self.ext_id = None
        for transceiver in transceivers:
            ext_id = transceiver.parameters.extmap.get(URI_TRANSPORT_CC)
            if ext_id is not None and not transceiver.stopped:
                self.ext_id = ext_id

    def observe(self, header: RtpHeader, arrival: float) -> None:
        """Record the packet's transport-wide sequence number, if it carries one."""
        ext_id = self.ext_id
        if ext_id is not None:
            value = header.extensions.get(ext_id)
            if value is not None and len(value) == 2:
                self.recorder.record((value[0] << 8) | value[1], int(arrival * 1e6), header.ssrc)

    def generate(self, now: float) -> list[bytes]:
        """Feedback packets covering everything recorded since the last call."""
        return self.recorder.build(self._rtcp_ssrc)
