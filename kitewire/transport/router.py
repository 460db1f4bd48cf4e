"""The RTP/RTCP router of one bundle: demultiplexing, mid/rid learning and RTCP dispatch.

Decrypted RTP goes to the receiver of its SSRC; an SSRC not seen before is
learned from the mid extension (or, without one, from a payload type only one
m-line the remote sends on uses) and its rid from the rid extension. RTCP
goes to the senders (reports, NACK, PLI, FIR, REMB, transport-cc) and
receivers (sender reports) whose SSRCs it is about, through their callbacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from .receiver import RtpReceiver
from .reports import round_trip_time
from .rtcp import (
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    RtcpPacket,
    SenderReport,
    TransportCcFeedback,
    ntp_to_middle32,
    parse_rtcp,
)
from .rtp import URI_MID, URI_RID, RtpHeader, decode_sdes_string, parse_rtp_header
from .sender import RtpSender
from .transceiver import Transceiver

__all__ = ["RtpRouter"]

logger = logging.getLogger(__name__)

# SSRCs learned from packets, per connection (a peer cycling SSRCs must not grow the table).
_MAX_ROUTES = 1024


class RtpRouter:
    """Routes one bundle's decrypted packets; see the module docstring.

    ``invoke(callback, *args)`` calls a user callback safely; ``observers`` are
    called with every routed packet's header and arrival time before it is
    delivered (feedback generators that watch RTP). Counters for bad network
    input: ``malformed_rtp``, ``malformed_rtcp``, ``unroutable_rtp``.
    """

    def __init__(
        self,
        invoke: Callable[..., None],
        observers: Sequence[Callable[[RtpHeader, float], None]] = (),
    ) -> None:
        self._invoke = invoke
        self._observers = tuple(observers)
        self._transceivers: list[Transceiver] = []
        #: SSRC -> (receiver, rid): announced in SDP or learned from packets.
        self.routes: dict[int, tuple[RtpReceiver, str | None]] = {}
        self._senders_by_ssrc: dict[int, RtpSender] = {}
        self._mid_ext_ids: set[int] = set()
        self._rid_ext_ids: set[int] = set()
        self.malformed_rtp = 0
        self.malformed_rtcp = 0
        self.unroutable_rtp = 0

    def update(self, transceivers: list[Transceiver]) -> None:
        """Rebuild the tables after a negotiation (``transceivers`` is kept, not copied)."""
        self._transceivers = transceivers
        self._senders_by_ssrc = {}
        self._mid_ext_ids = set()
        self._rid_ext_ids = set()
        valid_receivers = set()
        for transceiver in transceivers:
            if transceiver.stopped:
                continue
            for ssrc in transceiver.sender.streams:
                self._senders_by_ssrc[ssrc] = transceiver.sender
            ext = transceiver.parameters.extmap
            if URI_MID in ext:
                self._mid_ext_ids.add(ext[URI_MID])
            if URI_RID in ext:
                self._rid_ext_ids.add(ext[URI_RID])
            valid_receivers.add(transceiver.receiver)
            if not transceiver.receiver.remote_rids:
                for ssrc in transceiver.receiver.ssrc_rids:
                    self.routes.setdefault(ssrc, (transceiver.receiver, None))
        self.routes = {s: r for s, r in self.routes.items() if r[0] in valid_receivers}

    def on_rtp(self, data: bytes) -> None:
        """Route one decrypted RTP packet to its receiver (counting what cannot be)."""
        try:
            header = parse_rtp_header(data)
        except ValueError:
            self.malformed_rtp += 1
            return
        try:
            route = self.routes.get(header.ssrc)
            if route is None:
                route = self._learn_route(header)
                if route is None:
                    self.unroutable_rtp += 1
                    return
            receiver, rid = route
            header.rid = rid
            arrival = time.monotonic()
            for observe in self._observers:
                observe(header, arrival)
            receiver.deliver(data, header, arrival)
        except Exception:
            logger.exception("RTP handling failed")

    def _learn_route(self, header: RtpHeader) -> tuple[RtpReceiver, str | None] | None:
        receiver: RtpReceiver | None = None
        for ext_id in self._mid_ext_ids:
            value = header.extensions.get(ext_id)
            if value is not None:
                mid = decode_sdes_string(value)
                for transceiver in self._transceivers:
                    if transceiver.mid == mid and not transceiver.stopped:
                        receiver = transceiver.receiver
                        break
                break
        if receiver is None:
            candidates = [
                t.receiver
                for t in self._transceivers
                if not t.stopped
                and t.remote_sends
                and any(c.payload_type == header.payload_type for c in t.parameters.codecs)
            ]
            if len(candidates) == 1:
                receiver = candidates[0]
        if receiver is None:
            return None
        rid: str | None = None
        for ext_id in self._rid_ext_ids:
            value = header.extensions.get(ext_id)
            if value is not None:
                rid = decode_sdes_string(value)
                break
        if receiver.remote_rids and rid is None:
            # Simulcast packet whose layer is not known yet: deliver, do not cache.
            return receiver, None
        if len(self.routes) < _MAX_ROUTES:
            self.routes[header.ssrc] = (receiver, rid)
            receiver.ssrc_rids[header.ssrc] = rid
        return receiver, rid

    def on_rtcp(self, data: bytes) -> None:
        """Dispatch one decrypted (compound) RTCP packet to the senders and receivers it is about."""
        try:
            packets = parse_rtcp(data)
        except ValueError:
            self.malformed_rtcp += 1
            return
        try:
            for packet in packets:
                self._dispatch_rtcp(packet)
        except Exception:
            logger.exception("RTCP handling failed")

    def _dispatch_rtcp(self, packet: RtcpPacket) -> None:
        senders = self._senders_by_ssrc
        if isinstance(packet, (SenderReport, ReceiverReport)):
            if isinstance(packet, SenderReport):
                route = self.routes.get(packet.ssrc)
                if route is not None:
                    receiver = route[0]
                    stats = receiver.streams.get(packet.ssrc)
                    if stats is not None:
                        stats.last_sr = ntp_to_middle32(packet.ntp_time)
                        stats.last_sr_time = time.monotonic()
                    self._invoke(receiver.on_sender_report, packet)
            for block in packet.reports:
                sender = senders.get(block.ssrc)
                if sender is not None:
                    rtt = round_trip_time(block)
                    send_stats = sender.streams.get(block.ssrc)
                    if send_stats is not None:
                        if rtt is not None:
                            send_stats.rtt = rtt
                        send_stats.fraction_lost = block.fraction_lost / 256.0
                        send_stats.packets_lost = block.packets_lost
                    self._invoke(sender.on_receiver_report, block, rtt)
        elif isinstance(packet, Nack):
            sender = senders.get(packet.media_ssrc)
            if sender is not None:
                self._invoke(sender.on_nack, packet.media_ssrc, packet.lost)
        elif isinstance(packet, Pli):
            sender = senders.get(packet.media_ssrc)
            if sender is not None:
                self._invoke(sender.on_keyframe_request, packet.media_ssrc)
        elif isinstance(packet, Fir):
            for ssrc, _ in packet.entries:
                sender = senders.get(ssrc)
                if sender is not None:
                    self._invoke(sender.on_keyframe_request, ssrc)
        elif isinstance(packet, Remb):
            targets = {id(s): s for s in (senders.get(x) for x in packet.ssrcs) if s is not None}
            if not targets:
                targets = {id(s): s for s in senders.values()}
            for sender in targets.values():
                self._invoke(sender.on_remb, packet.bitrate, packet.ssrcs)
        elif isinstance(packet, TransportCcFeedback):
            for sender in {id(s): s for s in senders.values()}.values():
                self._invoke(sender.on_transport_cc, packet)
