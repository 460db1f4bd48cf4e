"""RTCP: parse compound packets and build the feedback messages WebRTC uses.

Parsed packets are small dataclasses. Builders return ``bytes`` ready to be
concatenated into a compound packet and SRTCP-protected by the transport.

Message types: SR (200), RR (201), SDES (202), BYE (203), RTPFB (205: fmt 1
generic NACK, fmt 15 transport-wide CC), PSFB (206: fmt 1 PLI, fmt 4 FIR,
fmt 15 REMB as application layer feedback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "ReportBlock",
    "SenderReport",
    "ReceiverReport",
    "SourceDescription",
    "Bye",
    "Nack",
    "Pli",
    "Fir",
    "Remb",
    "TransportCcFeedback",
    "UnknownRtcp",
    "RtcpPacket",
    "parse_rtcp",
    "build_sender_report",
    "build_receiver_report",
    "build_sdes",
    "build_bye",
    "build_nack",
    "build_pli",
    "build_fir",
    "build_remb",
    "build_transport_cc",
    "ntp_now",
    "ntp_to_middle32",
]


@dataclass(frozen=True)
class ReportBlock:
    """One reception report block (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int  # 0..255, fraction of 256
    packets_lost: int  # cumulative, signed 24-bit
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # in RTP timestamp units
    last_sr: int  # middle 32 bits of the NTP time of the last SR
    delay_since_last_sr: int  # in 1/65536 s


@dataclass(frozen=True)
class SenderReport:
    """RTCP SR: ``ntp_time`` is the 64-bit NTP timestamp."""

    ssrc: int
    ntp_time: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(frozen=True)
class ReceiverReport:
    """RTCP RR."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(frozen=True)
class SourceDescription:
    """RTCP SDES: ssrc -> CNAME (other items ignored)."""

    cnames: dict[int, str]


@dataclass(frozen=True)
class Bye:
    """RTCP BYE."""

    ssrcs: list[int]


@dataclass(frozen=True)
class Nack:
    """Generic NACK (RTPFB fmt 1): ``lost`` are the sequence numbers asked for."""

    sender_ssrc: int
    media_ssrc: int
    lost: list[int]


@dataclass(frozen=True)
class Pli:
    """Picture loss indication (PSFB fmt 1): a keyframe request."""

    sender_ssrc: int
    media_ssrc: int


@dataclass(frozen=True)
class Fir:
    """Full intra request (PSFB fmt 4): ``entries`` are (media ssrc, command seq)."""

    sender_ssrc: int
    entries: list[tuple[int, int]]


@dataclass(frozen=True)
class Remb:
    """Receiver estimated maximum bitrate (PSFB fmt 15 "REMB")."""

    sender_ssrc: int
    bitrate: int  # bits per second
    ssrcs: list[int]


@dataclass(frozen=True)
class TransportCcFeedback:
    """Transport-wide congestion control feedback (RTPFB fmt 15).

    ``packets`` lists every sequence number the feedback covers in order, with
    the arrival time in microseconds relative to ``reference_time_us`` for the
    received ones and ``None`` for the lost ones.
    """

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time_us: int  # reference time (multiples of 64 ms) in microseconds
    feedback_count: int
    packets: list[tuple[int, int | None]]


@dataclass(frozen=True)
class UnknownRtcp:
    """Any RTCP packet this module does not interpret (kept raw)."""

    packet_type: int
    fmt: int
    data: bytes


RtcpPacket = Union[
    SenderReport,
    ReceiverReport,
    SourceDescription,
    Bye,
    Nack,
    Pli,
    Fir,
    Remb,
    TransportCcFeedback,
    UnknownRtcp,
]


def parse_rtcp(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP packet. Raises ValueError on malformed input."""
    raise NotImplementedError


def build_sender_report(
    ssrc: int,
    ntp_time: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    reports: list[ReportBlock] | None = None,
) -> bytes:
    """Build an SR packet."""
    raise NotImplementedError


def build_receiver_report(ssrc: int, reports: list[ReportBlock]) -> bytes:
    """Build an RR packet (at most 31 report blocks)."""
    raise NotImplementedError


def build_sdes(ssrc: int, cname: str) -> bytes:
    """Build an SDES packet with one CNAME chunk."""
    raise NotImplementedError


def build_bye(ssrcs: list[int]) -> bytes:
    """Build a BYE packet."""
    raise NotImplementedError


def build_nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """Build a generic NACK for the given sequence numbers (packed as PID+BLP)."""
    raise NotImplementedError


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Build a PLI."""
    raise NotImplementedError


def build_fir(sender_ssrc: int, media_ssrc: int, command_sequence: int) -> bytes:
    """Build a FIR with one entry."""
    raise NotImplementedError


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    """Build a REMB (bitrate in bits per second)."""
    raise NotImplementedError


def build_transport_cc(
    sender_ssrc: int,
    media_ssrc: int,
    base_sequence: int,
    reference_time_us: int,
    feedback_count: int,
    packets: list[tuple[int, int | None]],
) -> bytes:
    """Build transport-wide CC feedback.

    ``packets`` are consecutive (sequence, arrival_us or None) starting at
    ``base_sequence``; arrival times are absolute microseconds on the same clock
    as ``reference_time_us`` (which is truncated to a multiple of 64 ms).
    """
    raise NotImplementedError


def ntp_now() -> int:
    """Current wallclock as a 64-bit NTP timestamp."""
    raise NotImplementedError


def ntp_to_middle32(ntp_time: int) -> int:
    """The middle 32 bits of an NTP timestamp (the LSR field of report blocks)."""
    return (ntp_time >> 16) & 0xFFFFFFFF
