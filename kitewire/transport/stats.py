"""Per-SSRC send and receive statistics, and the snapshots ``PeerConnection.get_stats`` returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .rtcp import ReportBlock

if TYPE_CHECKING:
    from .transceiver import Transceiver

__all__ = [
    "InboundStreamStats",
    "OutboundStreamStats",
    "PeerConnectionStats",
    "RecvStats",
    "SendStats",
    "collect_stats",
]


@dataclass(frozen=True)
class OutboundStreamStats:
    """One SSRC we send: counted from the packets sent, loss/RTT from the remote's reports."""

    mid: str | None
    ssrc: int
    rid: str | None
    packets_sent: int
    payload_bytes_sent: int
    round_trip_time: float | None
    fraction_lost: float
    packets_lost: int


@dataclass(frozen=True)
class InboundStreamStats:
    """One SSRC we receive (RFC 3550 reception statistics)."""

    mid: str | None
    ssrc: int
    rid: str | None
    packets_received: int
    packets_lost: int
    highest_sequence: int
    jitter_seconds: float


@dataclass(frozen=True)
class PeerConnectionStats:
    """A snapshot of a :class:`PeerConnection`'s counters."""

    connection_state: str
    outbound: list[OutboundStreamStats]
    inbound: list[InboundStreamStats]
    malformed_rtp: int
    malformed_rtcp: int
    unroutable_rtp: int
    srtp_errors: int


class SendStats:
    """Counters for one outgoing SSRC, taken from the packets actually sent."""

    __slots__ = (
        "fraction_lost",
        "last_sr_ntp",
        "last_time",
        "last_timestamp",
        "octets",
        "packets",
        "packets_lost",
        "rtt",
        "sent_since_report",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0
        self.last_timestamp = 0
        self.last_time = 0.0
        self.last_sr_ntp = 0
        self.sent_since_report = False
        # From the remote's latest report block about this SSRC.
        self.rtt: float | None = None
        self.fraction_lost = 0.0
        self.packets_lost = 0


class RecvStats:
    """RFC 3550 appendix A.1/A.8 reception statistics for one incoming SSRC."""

    __slots__ = (
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter",
        "last_arrival",
        "last_sr",
        "last_sr_time",
        "last_transit",
        "max_seq",
        "received",
        "received_prior",
        "received_since_report",
    )

    def __init__(self, seq: int, clock_rate: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self.last_transit: float | None = None
        self.clock_rate = clock_rate
        self.last_sr = 0
        self.last_sr_time = 0.0
        self.received_since_report = False
        self.last_arrival = 0.0

    def update(self, seq: int, timestamp: int, arrival: float) -> None:
        self.received += 1
        self.received_since_report = True
        self.last_arrival = arrival
        delta = (seq - self.max_seq) & 0xFFFF
        if 0 < delta < 0x8000:
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
        if self.clock_rate:
            transit = arrival * self.clock_rate - timestamp
            if self.last_transit is not None:
                d = abs(transit - self.last_transit)
                # A timestamp jump (new source, wrap) is not jitter.
                if d < self.clock_rate * 10:
                    self.jitter += (d - self.jitter) / 16.0
            self.last_transit = transit

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        extended_max = self.cycles + self.max_seq
        expected = extended_max - self.base_seq + 1
        lost = max(0, expected - self.received)
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self.last_sr_time:
            dlsr = int((now - self.last_sr_time) * 65536) & 0xFFFFFFFF
        self.received_since_report = False
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            packets_lost=min(lost, 0x7FFFFF),
            highest_sequence=extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter),
            last_sr=self.last_sr,
            delay_since_last_sr=dlsr,
        )


def collect_stats(
    connection_state: str,
    transceivers: Sequence[Transceiver],
    *,
    malformed_rtp: int,
    malformed_rtcp: int,
    unroutable_rtp: int,
    srtp_errors: int,
) -> PeerConnectionStats:
    """A snapshot of every transceiver's per-SSRC counters, with the connection's error counters."""
    outbound: list[OutboundStreamStats] = []
    inbound: list[InboundStreamStats] = []
    for transceiver in transceivers:
        sender = transceiver.sender
        rids = {e.ssrc: e.rid or None for e in sender.encodings}
        for ssrc, send in sender.streams.items():
            if send.packets:
                outbound.append(
                    OutboundStreamStats(
                        transceiver.mid,
                        ssrc,
                        rids.get(ssrc),
                        send.packets,
                        send.octets,
                        send.rtt,
                        send.fraction_lost,
                        send.packets_lost,
                    )
                )
        receiver = transceiver.receiver
        for ssrc, recv in receiver.streams.items():
            extended = recv.cycles + recv.max_seq
            expected = extended - recv.base_seq + 1
            inbound.append(
                InboundStreamStats(
                    transceiver.mid,
                    ssrc,
                    receiver.ssrc_rids.get(ssrc),
                    recv.received,
                    max(0, expected - recv.received),
                    extended,
                    recv.jitter / recv.clock_rate if recv.clock_rate else 0.0,
                )
            )
    return PeerConnectionStats(
        connection_state, outbound, inbound, malformed_rtp, malformed_rtcp, unroutable_rtp, srtp_errors
    )
