"""RFC 3550 sender and receiver reports, generated from the senders' and receivers' stream statistics."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .rtcp import (
    ReportBlock,
    build_receiver_report,
    build_sdes,
    build_sender_report,
    ntp_from_unix,
    ntp_now,
    ntp_to_middle32,
)
from .rtp import RtpHeader

if TYPE_CHECKING:
    from .transceiver import Transceiver

__all__ = ["ReportGenerator", "round_trip_time"]

# A stream quiet this long (seconds) is no longer reported.
_REPORT_QUIET_STREAMS_FOR = 10.0
# Report blocks one receiver report holds (the 5-bit count).
_BLOCKS_PER_REPORT = 31


def round_trip_time(block: ReportBlock) -> float | None:
    """Seconds from a report block's LSR/DLSR (RFC 3550 6.4.1), None without a sender report to refer to."""
    if not block.last_sr:
        return None
    now_middle = ntp_to_middle32(ntp_now())
    rtt = (now_middle - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF
    if rtt > 0x7FFFFFFF:
        return None
    return rtt / 65536.0


class ReportGenerator:
    """Sender reports for every SSRC that sent lately, receiver reports for every SSRC received lately."""

    def __init__(
        self, transceivers: Callable[[], Sequence[Transceiver]], *, rtcp_ssrc: int, cname: str, interval: float
    ) -> None:
        self._transceivers = transceivers
        self._rtcp_ssrc = rtcp_ssrc
        self._cname = cname
        self.interval = interval

    def negotiated(self, transceivers: Sequence[Transceiver]) -> None:
        """Nothing to learn: the streams are read at each report."""

    def observe(self, header: RtpHeader, arrival: float) -> None:
        """Nothing per packet: receivers keep their own statistics."""

    def generate(self, now: float) -> list[bytes]:
        """One SR (with SDES) per sending SSRC, then RRs (with SDES) of up to 31 blocks."""
        packets: list[bytes] = []
        live = [t for t in self._transceivers() if not t.stopped]
        for transceiver in live:
            sender = transceiver.sender
            clock = sender.clock_rate()
            media_clock = sender.media_clock
            for ssrc, stats in sender.streams.items():
                if not stats.packets or now - stats.last_time > _REPORT_QUIET_STREAMS_FOR:
                    continue
                anchor = media_clock(ssrc) if media_clock is not None else None
                if anchor is not None:
                    # the media's own clock: this instant on it, in RTP ticks
                    wall = time.time()
                    ntp = ntp_from_unix(wall)
                    rtp_ts = (anchor[0] + round((wall - anchor[1]) * clock)) & 0xFFFFFFFF
                else:
                    ntp = ntp_now()
                    rtp_ts = (stats.last_timestamp + int((now - stats.last_time) * clock)) & 0xFFFFFFFF
                packet = build_sender_report(ssrc, ntp, rtp_ts, stats.packets, stats.octets)
                packets.append(packet + build_sdes(ssrc, self._cname))
                stats.last_sr_ntp = ntp
        blocks: list[ReportBlock] = []
        for transceiver in live:
            for ssrc, recv_stats in transceiver.receiver.streams.items():
                # Keep reporting a quiet stream for a while so the sender
                # still gets LSR/DLSR (its RTT) after a burst.
                if now - recv_stats.last_arrival < _REPORT_QUIET_STREAMS_FOR:
                    blocks.append(recv_stats.report_block(ssrc, now))
        for start in range(0, len(blocks), _BLOCKS_PER_REPORT):
            packet = build_receiver_report(self._rtcp_ssrc, blocks[start : start + _BLOCKS_PER_REPORT])
            packets.append(packet + build_sdes(self._rtcp_ssrc, self._cname))
        return packets
