"""The sending half of a transceiver: builds and sends RTP, counts what it sent, gets RTCP feedback."""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .codecs import Codec, NegotiatedParameters
from .rtcp import ReportBlock, TransportCcFeedback
from .rtp import URI_MID, URI_RID, RtpHeaderTemplate, build_rtp_packet, encode_sdes_string
from .stats import SendStats

if TYPE_CHECKING:
    from .transceiver import Transceiver

__all__ = ["RtpSender", "SendEncoding", "random_ssrc"]

# Seconds of media a retransmitted packet may lag the newest one sent (packet histories hold ~1 s).
_RETRANSMISSION_MAX_AGE = 5
_unpack_ts_ssrc = struct.Struct("!II").unpack_from


@dataclass(frozen=True)
class SendEncoding:
    """One simulcast layer we send: its rid ("q", "h", "f") and its SSRC."""

    rid: str
    ssrc: int


def random_ssrc() -> int:
    return secrets.randbelow(0xFFFFFFF0) + 1


class RtpSender:
    """The sending half of a :class:`Transceiver`.

    ``send_rtp`` sends finished RTP packets AS GIVEN (it does not add mid/rid);
    use :meth:`build_packet` to get a packet with the mid (and, for simulcast,
    rid) extensions and any other negotiated extensions written. For
    simulcast, ``encodings`` lists one (rid, ssrc) per layer.

    Feedback callbacks (attributes, called on the event loop):
    ``on_nack(media_ssrc, lost_seqs)``, ``on_keyframe_request(media_ssrc)`` for
    PLI and FIR, ``on_remb(bitrate_bps, ssrcs)``,
    ``on_receiver_report(report_block, rtt_seconds_or_None)``,
    ``on_transport_cc(feedback)`` (transport-wide: every sender of the
    connection gets every transport-cc feedback).

    Sender reports are sent automatically for every SSRC that sent packets.
    Their RTP timestamp <-> wallclock mapping comes from ``media_clock`` when
    set (``media_clock(ssrc)`` -> (RTP timestamp, the ``time.time()`` instant
    it stands for), or None): a publisher names its capture instants there and
    an SFU the publisher's own sender reports, so that a receiver lip-syncing
    audio and video by their reports lines up capture times, not the moments
    each pipeline happened to send. Otherwise the last packet sent counts as
    sampled when it was sent.
    """

    def __init__(
        self,
        send: Callable[[bytes | bytearray, bool], bool],
        transceiver: Transceiver,
        parameters: NegotiatedParameters,
        encodings: list[SendEncoding],
    ) -> None:
        # send(packet, is_rtcp): SRTP-protect and send now, False if it could not be.
        self._send = send
        self._transceiver = transceiver
        self._parameters = parameters
        self._encodings = encodings
        self.streams: dict[int, SendStats] = {e.ssrc: SendStats() for e in encodings}
        self.packets_dropped = 0
        self.on_nack: Callable[[int, list[int]], object] | None = None
        self.on_keyframe_request: Callable[[int], object] | None = None
        self.on_remb: Callable[[int, list[int]], object] | None = None
        self.on_receiver_report: Callable[[ReportBlock, float | None], object] | None = None
        self.on_transport_cc: Callable[[TransportCcFeedback], object] | None = None
        self.media_clock: Callable[[int], tuple[int, float] | None] | None = None

    @property
    def ssrc(self) -> int:
        """The SSRC of the first (or only) encoding."""
        return self._encodings[0].ssrc

    @property
    def encodings(self) -> list[SendEncoding]:
        """One (rid, ssrc) per layer; a single entry with rid "" when not simulcast."""
        return list(self._encodings)

    @property
    def simulcast(self) -> bool:
        """True when this sender has several rid layers."""
        return len(self._encodings) > 1 or bool(self._encodings[0].rid)

    @property
    def mid(self) -> str | None:
        """The mid of the owning transceiver once negotiated."""
        return self._transceiver.mid

    @property
    def header_extensions(self) -> dict[str, int]:
        """Negotiated header extensions: URI -> id."""
        return dict(self._parameters.extmap)

    @property
    def codecs(self) -> list[Codec]:
        """Negotiated codecs with their payload types (preferred first)."""
        return list(self._parameters.codecs)

    @property
    def packets_sent(self) -> int:
        """RTP packets handed to the network so far (all encodings)."""
        return sum(s.packets for s in self.streams.values())

    def ssrc_for_rid(self, rid: str) -> int:
        """The SSRC of simulcast layer ``rid``; ValueError if unknown."""
        for encoding in self._encodings:
            if encoding.rid == rid:
                return encoding.ssrc
        raise ValueError(f"rid one of {[e.rid for e in self._encodings]} expected, got {rid!r}")

    def build_packet(
        self,
        payload: bytes | bytearray | memoryview,
        *,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        marker: bool = False,
        rid: str | None = None,
        ssrc: int | None = None,
        extensions: dict[str, bytes] | None = None,
    ) -> bytes:
        """Build an RTP packet for this sender.

        Writes the mid extension (when negotiated), the rid extension when
        ``rid`` is given, and ``extensions`` (URI -> value, skipped when the URI
        was not negotiated). The SSRC is ``ssrc`` or that of ``rid`` or
        :attr:`ssrc`.
        """
        ext = self._identity_extensions(rid)
        if rid and ssrc is None:
            ssrc = self.ssrc_for_rid(rid)
        if extensions:
            extmap = self._parameters.extmap
            for uri, value in extensions.items():
                ext_id = extmap.get(uri)
                if ext_id is not None:
                    ext[ext_id] = value
        return build_rtp_packet(
            payload_type=payload_type,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=self.ssrc if ssrc is None else ssrc,
            payload=payload,
            marker=marker,
            extensions=ext or None,
        )

    def header_template(
        self,
        *,
        payload_type: int,
        slots: tuple[tuple[str, int], ...] = (),
        rid: str | None = None,
        ssrc: int | None = None,
    ) -> RtpHeaderTemplate:
        """A prebuilt header for this sender's packets: what :meth:`build_packet` writes, built once.

        ``slots`` lists (extension URI, value size) of the values each packet
        gives to :meth:`RtpHeaderTemplate.packet`, in that order; every URI
        must be negotiated (ValueError otherwise; see :attr:`header_extensions`).
        """
        extmap = self._parameters.extmap
        slot_ids: list[tuple[int, int]] = []
        for uri, size in slots:
            ext_id = extmap.get(uri)
            if ext_id is None:
                raise ValueError(f"header extension one of {sorted(extmap)} expected, got {uri!r} (not negotiated)")
            slot_ids.append((ext_id, size))
        if rid and ssrc is None:
            ssrc = self.ssrc_for_rid(rid)
        return RtpHeaderTemplate(
            payload_type=payload_type,
            ssrc=self.ssrc if ssrc is None else ssrc,
            fixed=self._identity_extensions(rid),
            slots=tuple(slot_ids),
        )

    def _identity_extensions(self, rid: str | None) -> dict[int, bytes]:
        """The mid (and, given a rid, rid) extension values every packet of this sender carries, by id."""
        extmap = self._parameters.extmap
        ext: dict[int, bytes] = {}
        mid = self._transceiver.mid
        mid_id = extmap.get(URI_MID)
        if mid is not None and mid_id is not None:
            ext[mid_id] = encode_sdes_string(mid)
        if rid:
            rid_id = extmap.get(URI_RID)
            if rid_id is not None:
                ext[rid_id] = encode_sdes_string(rid)
        return ext

    def send_rtp(self, packet: bytes | bytearray) -> None:
        """SRTP-protect and send one RTP packet now (synchronous, no task).

        Silently dropped (and counted in ``packets_dropped``) when the
        transport is not connected yet or is closed, or the packet is shorter
        than an RTP header.
        """
        if len(packet) < 12 or not self._send(packet, False):
            self.packets_dropped += 1
            return
        timestamp, ssrc = _unpack_ts_ssrc(packet, 4)
        stats = self.streams.get(ssrc)
        if stats is None:
            # A caller-chosen SSRC (e.g. an SFU forwarding under its own SSRC
            # plan) still gets sender reports.
            stats = self.streams[ssrc] = SendStats()
        stats.packets += 1
        # SR octet counts are payload only: no header, extensions or padding.
        first = packet[0]
        header_length = 12 + (first & 0x0F) * 4
        if first & 0x10 and len(packet) >= header_length + 4:
            header_length += 4 + ((packet[header_length + 2] << 8) | packet[header_length + 3]) * 4
        payload_length = len(packet) - header_length
        if first & 0x20:
            payload_length -= packet[-1]
        stats.octets += max(payload_length, 0)
        # A retransmission carries its original, older timestamp: the sender
        # report keeps mapping wallclock to the newest one (compared across the
        # 32-bit wrap); a jump further back than a retransmission can be is a new timeline.
        behind = (stats.last_timestamp - timestamp) & 0xFFFFFFFF
        if stats.packets == 1 or not 0 < behind < self.clock_rate() * _RETRANSMISSION_MAX_AGE:
            stats.last_timestamp = timestamp
            stats.last_time = time.monotonic()
        stats.sent_since_report = True

    def send_rtcp(self, packet: bytes) -> None:
        """SRTCP-protect and send one (compound) RTCP packet now (dropped if not connected)."""
        self._send(packet, True)

    def clock_rate(self) -> int:
        codecs = self._parameters.codecs
        return codecs[0].clock_rate if codecs else 90000
