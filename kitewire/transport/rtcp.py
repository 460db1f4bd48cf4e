"""RTCP: parse compound packets and build the feedback messages WebRTC uses.

Parsed packets are small dataclasses. Builders return ``bytes`` ready to be
concatenated into a compound packet and SRTCP-protected by the transport.

Message types: SR (200), RR (201), SDES (202), BYE (203), RTPFB (205: fmt 1
generic NACK, fmt 15 transport-wide CC), PSFB (206: fmt 1 PLI, fmt 4 FIR,
fmt 15 REMB as application layer feedback).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "TRANSPORT_CC_REFERENCE_WRAP_US",
    "Bye",
    "Fir",
    "Nack",
    "Pli",
    "ReceiverReport",
    "Remb",
    "ReportBlock",
    "RtcpPacket",
    "SenderReport",
    "SourceDescription",
    "TransportCcFeedback",
    "UnknownRtcp",
    "build_bye",
    "build_fir",
    "build_nack",
    "build_pli",
    "build_receiver_report",
    "build_remb",
    "build_sdes",
    "build_sender_report",
    "build_transport_cc",
    "ntp_from_unix",
    "ntp_now",
    "ntp_to_middle32",
    "ntp_to_unix",
    "parse_rtcp",
]


RTCP_SR: Final = 200
RTCP_RR: Final = 201
RTCP_SDES: Final = 202
RTCP_BYE: Final = 203
RTCP_RTPFB: Final = 205
RTCP_PSFB: Final = 206

_NTP_UNIX_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_TWCC_TICK_US: Final = 250
_TWCC_REFERENCE_US: Final = 64_000
TRANSPORT_CC_REFERENCE_WRAP_US: Final = (1 << 24) * _TWCC_REFERENCE_US
"""Microseconds after which the transport-cc reference time (and every arrival time parsed from it) wraps."""

_u32 = struct.Struct("!I")
_report_block = struct.Struct("!IIIIII")


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
    the arrival time in microseconds for the received ones (on the same clock
    as ``reference_time_us``, which they are deltas from on the wire) and
    ``None`` for the lost ones.

    The reference time is a 24-bit count of 64 ms, read as signed: it wraps
    every 2**24 * 64 ms (about 12.4 days), so compare the times of two
    feedbacks modulo ``TRANSPORT_CC_REFERENCE_WRAP_US``, never as plain numbers.
    ``feedback_count`` wraps at 256 and ``base_sequence`` at 65536.
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


RtcpPacket = (
    SenderReport
    | ReceiverReport
    | SourceDescription
    | Bye
    | Nack
    | Pli
    | Fir
    | Remb
    | TransportCcFeedback
    | UnknownRtcp
)


def parse_rtcp(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP packet. Raises ValueError on malformed input."""
    out: list[RtcpPacket] = []
    length = len(data)
    pos = 0
    if length < 4:
        raise ValueError(f"RTCP packet needs at least 4 bytes, got {length}")
    while pos < length:
        if pos + 4 > length:
            raise ValueError(f"RTCP header truncated at byte {pos} of {length}")
        b0, packet_type, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise ValueError(f"RTCP version 2 expected, got {b0 >> 6}")
        end = pos + (words + 1) * 4
        if end > length:
            raise ValueError(f"RTCP packet type {packet_type} claims {(words + 1) * 4} bytes, {length - pos} left")
        body_end = end
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > end - pos - 4:
                raise ValueError(f"RTCP padding of {pad} bytes invalid")
            body_end = end - pad
        out.append(_parse_one(bytes(data[pos:body_end]), b0 & 0x1F, packet_type))
        pos = end
    return out


def _parse_report_blocks(body: bytes, offset: int, count: int) -> list[ReportBlock]:
    if offset + count * 24 > len(body):
        raise ValueError(f"RTCP report: {count} blocks need {count * 24} bytes, got {len(body) - offset}")
    blocks = []
    for i in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _report_block.unpack_from(body, offset + i * 24)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        blocks.append(ReportBlock(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr))
    return blocks


def _need(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise ValueError(f"RTCP {what}: at least {size} bytes expected, got {len(body)}")


def _parse_one(body: bytes, count: int, packet_type: int) -> RtcpPacket:
    if packet_type == RTCP_SR:
        _need(body, 28, "SR")
        ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body, 4)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _parse_report_blocks(body, 28, count))
    if packet_type == RTCP_RR:
        _need(body, 8, "RR")
        (ssrc,) = _u32.unpack_from(body, 4)
        return ReceiverReport(ssrc, _parse_report_blocks(body, 8, count))
    if packet_type == RTCP_SDES:
        return SourceDescription(_parse_sdes(body, count))
    if packet_type == RTCP_BYE:
        _need(body, 4 + count * 4, "BYE")
        return Bye([_u32.unpack_from(body, 4 + 4 * i)[0] for i in range(count)])
    if packet_type == RTCP_RTPFB:
        _need(body, 12, "RTPFB")
        sender, media = struct.unpack_from("!II", body, 4)
        if count == 1:
            lost: list[int] = []
            for pos in range(12, len(body) - 3, 4):
                pid, blp = struct.unpack_from("!HH", body, pos)
                lost.append(pid)
                for bit in range(16):
                    if blp & (1 << bit):
                        lost.append((pid + bit + 1) & 0xFFFF)
            return Nack(sender, media, lost)
        if count == 15:
            return _parse_transport_cc(body, sender, media)
    elif packet_type == RTCP_PSFB:
        _need(body, 12, "PSFB")
        sender, media = struct.unpack_from("!II", body, 4)
        if count == 1:
            return Pli(sender, media)
        if count == 4:
            entries = [(struct.unpack_from("!I", body, pos)[0], body[pos + 4]) for pos in range(12, len(body) - 7, 8)]
            return Fir(sender, entries)
        if count == 15 and body[12:16] == b"REMB":
            _need(body, 20, "REMB")
            num = body[16]
            exp = body[17] >> 2
            mantissa = ((body[17] & 0x03) << 16) | struct.unpack_from("!H", body, 18)[0]
            _need(body, 20 + 4 * num, "REMB")
            ssrcs = [_u32.unpack_from(body, 20 + 4 * i)[0] for i in range(num)]
            return Remb(sender, mantissa << exp, ssrcs)
    return UnknownRtcp(packet_type, count, body)


def _parse_sdes(body: bytes, count: int) -> dict[int, str]:
    cnames: dict[int, str] = {}
    pos = 4
    for _ in range(count):
        if pos + 4 > len(body):
            break
        (ssrc,) = _u32.unpack_from(body, pos)
        pos += 4
        while pos < len(body):
            item = body[pos]
            if item == 0:
                pos += 1
                break
            if pos + 2 > len(body):
                raise ValueError("RTCP SDES item truncated")
            size = body[pos + 1]
            if pos + 2 + size > len(body):
                raise ValueError("RTCP SDES item overruns packet")
            if item == 1:
                cnames[ssrc] = body[pos + 2 : pos + 2 + size].decode("utf-8", "replace")
            pos += 2 + size
        pos = (pos + 3) & ~3
    return cnames


def _parse_transport_cc(body: bytes, sender: int, media: int) -> TransportCcFeedback:
    _need(body, 20, "transport-cc")
    base, status_count, ref_and_count = struct.unpack_from("!HHI", body, 12)
    reference = ref_and_count >> 8
    if reference & 0x800000:
        reference -= 1 << 24
    feedback_count = ref_and_count & 0xFF
    pos = 20
    symbols: list[int] = []
    while len(symbols) < status_count:
        if pos + 2 > len(body):
            raise ValueError(f"transport-cc: {status_count} statuses announced, chunks end early")
        (chunk,) = struct.unpack_from("!H", body, pos)
        pos += 2
        if chunk & 0x8000 == 0:
            symbols.extend([(chunk >> 13) & 0x3] * (chunk & 0x1FFF))
        elif chunk & 0x4000:
            symbols.extend((chunk >> shift) & 0x3 for shift in range(12, -1, -2))
        else:
            symbols.extend((chunk >> shift) & 0x1 for shift in range(13, -1, -1))
    del symbols[status_count:]
    reference_us = reference * _TWCC_REFERENCE_US
    current = reference_us
    packets: list[tuple[int, int | None]] = []
    for index, symbol in enumerate(symbols):
        seq = (base + index) & 0xFFFF
        if symbol == 0:
            packets.append((seq, None))
            continue
        if symbol == 1:
            if pos + 1 > len(body):
                raise ValueError("transport-cc: receive deltas truncated")
            delta = body[pos]
            pos += 1
        elif symbol == 2:
            if pos + 2 > len(body):
                raise ValueError("transport-cc: receive deltas truncated")
            (delta,) = struct.unpack_from("!h", body, pos)
            pos += 2
        else:
            raise ValueError(f"transport-cc: reserved status symbol {symbol}")
        current += delta * _TWCC_TICK_US
        packets.append((seq, current))
    return TransportCcFeedback(sender, media, base, reference_us, feedback_count, packets)


def build_sender_report(
    ssrc: int,
    ntp_time: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    reports: list[ReportBlock] | None = None,
) -> bytes:
    """Build an SR packet."""
    reports = reports or []
    body = struct.pack(
        "!IQIII",
        ssrc,
        ntp_time & 0xFFFFFFFFFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    ) + _pack_report_blocks(reports)
    return _header(len(reports), RTCP_SR, body) + body


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError(f"RTCP body must be a multiple of 4 bytes, got {len(body)}")
    return struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4)


def _pack_report_blocks(reports: list[ReportBlock]) -> bytes:
    if len(reports) > 31:
        raise ValueError(f"RTCP report: at most 31 report blocks, got {len(reports)}")
    return b"".join(
        _report_block.pack(
            r.ssrc,
            (min(max(r.fraction_lost, 0), 255) << 24) | (r.packets_lost & 0xFFFFFF),
            r.highest_sequence & 0xFFFFFFFF,
            r.jitter & 0xFFFFFFFF,
            r.last_sr & 0xFFFFFFFF,
            r.delay_since_last_sr & 0xFFFFFFFF,
        )
        for r in reports
    )


def build_receiver_report(ssrc: int, reports: list[ReportBlock]) -> bytes:
    """Build an RR packet (at most 31 report blocks)."""
    body = _u32.pack(ssrc) + _pack_report_blocks(reports)
    return _header(len(reports), RTCP_RR, body) + body


def build_sdes(ssrc: int, cname: str) -> bytes:
    """Build an SDES packet with one CNAME chunk."""
    raw = cname.encode("utf-8")[:255]
    chunk = _u32.pack(ssrc) + bytes((1, len(raw))) + raw + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return _header(1, RTCP_SDES, chunk) + chunk


def build_bye(ssrcs: list[int]) -> bytes:
    """Build a BYE packet."""
    body = b"".join(_u32.pack(s) for s in ssrcs[:31])
    return _header(min(len(ssrcs), 31), RTCP_BYE, body) + body


def build_nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """Build a generic NACK for the given sequence numbers (packed as PID+BLP)."""
    items: list[bytes] = []
    pending = sorted({seq & 0xFFFF for seq in lost})
    if len(pending) > 1:
        # Start after the widest gap (circularly), so a list wrapping around
        # 65535 -> 0 begins with its oldest numbers and packs into few items.
        gaps = [(pending[i] - pending[i - 1]) & 0xFFFF for i in range(len(pending))]
        split = max(range(len(pending)), key=gaps.__getitem__)
        pending = pending[split:] + pending[:split]
    i = 0
    while i < len(pending):
        pid = pending[i]
        blp = 0
        i += 1
        while i < len(pending):
            distance = (pending[i] - pid) & 0xFFFF
            if not 1 <= distance <= 16:
                break
            blp |= 1 << (distance - 1)
            i += 1
        items.append(struct.pack("!HH", pid, blp))
    body = struct.pack("!II", sender_ssrc, media_ssrc) + b"".join(items)
    return _header(1, RTCP_RTPFB, body) + body


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Build a PLI."""
    body = struct.pack("!II", sender_ssrc, media_ssrc)
    return _header(1, RTCP_PSFB, body) + body


def build_fir(sender_ssrc: int, media_ssrc: int, command_sequence: int) -> bytes:
    """Build a FIR with one entry."""
    body = struct.pack("!IIIB3x", sender_ssrc, 0, media_ssrc, command_sequence & 0xFF)
    return _header(4, RTCP_PSFB, body) + body


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    """Build a REMB (bitrate in bits per second)."""
    if bitrate < 0:
        raise ValueError(f"REMB bitrate >= 0 expected, got {bitrate}")
    exp = 0
    mantissa = int(bitrate)
    while mantissa >= 1 << 18:
        mantissa >>= 1
        exp += 1
    if exp > 63:
        raise ValueError(f"REMB bitrate too large: {bitrate}")
    ssrcs = ssrcs[:255]
    body = struct.pack(
        "!II4sBBH", sender_ssrc, 0, b"REMB", len(ssrcs), (exp << 2) | (mantissa >> 16), mantissa & 0xFFFF
    ) + b"".join(_u32.pack(s) for s in ssrcs)
    return _header(15, RTCP_PSFB, body) + body


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
    if not packets:
        raise ValueError("transport-cc: at least one packet expected, got none")
    if len(packets) > 0xFFFF:
        raise ValueError(f"transport-cc: at most 65535 packets, got {len(packets)}")
    reference = reference_time_us // _TWCC_REFERENCE_US
    current = reference * _TWCC_REFERENCE_US
    symbols: list[int] = []
    deltas: list[bytes] = []
    for _, arrival in packets:
        if arrival is None:
            symbols.append(0)
            continue
        ticks = (arrival - current) // _TWCC_TICK_US
        if 0 <= ticks <= 255:
            symbols.append(1)
            deltas.append(bytes((ticks,)))
        elif -32768 <= ticks <= 32767:
            symbols.append(2)
            deltas.append(struct.pack("!h", ticks))
        else:
            raise ValueError(f"transport-cc: arrival delta of {ticks * _TWCC_TICK_US} us does not fit")
        # Advance by the quantised delta so rounding errors do not accumulate.
        current += ticks * _TWCC_TICK_US
    chunks: list[bytes] = []
    i = 0
    while i < len(symbols):
        run = 1
        while i + run < len(symbols) and symbols[i + run] == symbols[i] and run < 0x1FFF:
            run += 1
        if run >= 7:
            chunks.append(struct.pack("!H", (symbols[i] << 13) | run))
            i += run
            continue
        group = symbols[i : i + 7]
        chunk = 0xC000
        for k, symbol in enumerate(group):
            chunk |= symbol << (12 - 2 * k)
        chunks.append(struct.pack("!H", chunk))
        i += len(group)
    body = (
        struct.pack(
            "!IIHHI",
            sender_ssrc,
            media_ssrc,
            base_sequence & 0xFFFF,
            len(packets),
            ((reference & 0xFFFFFF) << 8) | (feedback_count & 0xFF),
        )
        + b"".join(chunks)
        + b"".join(deltas)
    )
    pad = -len(body) % 4
    if pad:
        # RTCP padding: the last byte counts the padding bytes.
        body += bytes(pad - 1) + bytes((pad,))
        return struct.pack("!BBH", 0xA0 | 15, RTCP_RTPFB, len(body) // 4) + body
    return _header(15, RTCP_RTPFB, body) + body


def ntp_now() -> int:
    """Current wallclock as a 64-bit NTP timestamp.

    The 32-bit seconds field wraps on 2036-02-07 (NTP era 1); the value stays
    64 bits, as on the wire, so LSR/DLSR arithmetic (modulo 2**32 on the middle
    bits) carries on across it.
    """
    return ntp_from_unix(time.time())


def ntp_from_unix(unix_seconds: float) -> int:
    """A Unix time (``time.time()`` seconds) as a 64-bit NTP timestamp (see :func:`ntp_now` on the era)."""
    seconds = int(unix_seconds // 1)
    fraction = int((unix_seconds - seconds) * (1 << 32)) & 0xFFFFFFFF
    return (((seconds + _NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32) | fraction


def ntp_to_unix(ntp_time: int) -> float:
    """A 64-bit NTP timestamp as Unix seconds (era 0 before 2036, era 1 after)."""
    seconds = (ntp_time >> 32) & 0xFFFFFFFF
    unix = seconds - _NTP_UNIX_OFFSET
    if unix < 0:
        unix += 1 << 32  # era 1 (after 2036-02-07)
    return unix + (ntp_time & 0xFFFFFFFF) / (1 << 32)


def ntp_to_middle32(ntp_time: int) -> int:
    """The middle 32 bits of an NTP timestamp (the LSR field of report blocks)."""
    return (ntp_time >> 16) & 0xFFFFFFFF
