"""The down-track: what one subscriber receives of one up-track.

Each publisher packet, prepared once by the up-track, is mapped into the
subscriber's sequence/timestamp space by an ``RtpRewriter`` and sent through the
subscriber's ``RtpSender`` with a header from the sender's own
:meth:`~kitewire.transport.RtpSender.header_template` (built once per shape of
forwarded extensions). Sent packets are kept for NACKs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kitewire.media.packet_history import PacketHistory
from kitewire.transport import Transceiver
from kitewire.transport.rtp import RtpHeaderTemplate

from .forwarder import RtpRewriter
from .uptrack import IncomingPacket, PublishedTrack, quality_to_layer

if TYPE_CHECKING:
    from .participant import Participant

__all__ = ["DownTrack", "msid_stream_id"]

logger = logging.getLogger("kitewire.server")

# How long a downtrack trusts a positive readiness check (connection state and m-line direction).
_READY_RECHECK_SECONDS = 0.05
# Header templates kept per downtrack (one per shape of forwarded extensions; a
# publisher varying value sizes must not grow this without bound).
_MAX_HEADER_TEMPLATES = 16

# A header template and, for each of its slots, the index into IncomingPacket.extensions of the value it
# takes (None: it takes them all, in order).
_ShapedTemplate = tuple[RtpHeaderTemplate, tuple[int, ...] | None]
# Clients that take "PA_xxx|stream" as a stream id (older ones read the track sid from it).
_MIN_SYNC_STREAM_PROTOCOL = 10


def msid_stream_id(track: PublishedTrack, subscriber: Participant) -> str:
    """The a=msid stream id ``subscriber``'s m-line of ``track`` carries.

    libwebrtc lip-syncs only the tracks of one media stream, so with ``sync_streams`` a
    publisher's tracks of one TrackInfo.stream share "PA_xxx|camera"; the track sid is the
    msid's track id. Otherwise (and for clients too old for it, or Firefox, which livekit
    leaves out as well) each track is a stream of its own, "PA_xxx|TR_xxx".
    """
    grouped = bool(track.info.stream) and subscriber.context.settings.sync_streams
    if grouped:
        client = subscriber.client_info
        grouped = client.protocol >= _MIN_SYNC_STREAM_PROTOCOL and "firefox" not in client.browser.lower()
    return f"{track.publisher.sid}|{track.info.stream if grouped else track.sid}"


class DownTrack:
    """What one subscriber receives of one published track."""

    def __init__(
        self,
        track: PublishedTrack,
        subscriber: Participant,
        transceiver: Transceiver | None,
        *,
        is_ready: Callable[[Transceiver], bool],
    ) -> None:
        self.track = track
        self.subscriber = subscriber
        self.transceiver: Transceiver | None = None
        self._is_ready = is_ready
        mime = track.codec.mime_type if track.codec is not None else track.info.mime_type or "video/VP8"
        self._needs_keyframe = track.kind == "video"
        self.rewriter = RtpRewriter(
            mime,
            clock_rate=track.codec.clock_rate if track.codec else 90000,
            requires_keyframe=self._needs_keyframe,
        )
        self.desired_layer = 2
        self.disabled = False
        # 512 packets cover ~1.5 s of a 3 Mbps layer, as long as a NACK is worth answering.
        self.cache = PacketHistory(max_packets=512, max_age=1.5)
        self.packets_sent = 0
        self.retransmissions = 0
        self.nacks_unanswered = 0
        self._out_pt: int | None = None
        self._ext_out: dict[str, int] = {}
        # The header of packets without forwarded extensions (SSRC and mid are the same in every packet).
        self._plain: _ShapedTemplate | None = None
        self._templates: dict[tuple[tuple[str, int], ...], _ShapedTemplate] = {}
        self._ready_until = float("-inf")
        if transceiver is not None:
            self.bind(transceiver)

    def bind(self, transceiver: Transceiver) -> None:
        """Send through ``transceiver`` (an m-line of the subscriber's PeerConnection)."""
        self.transceiver = transceiver
        self._out_pt = None
        self._plain = None
        self._templates = {}
        self._ready_until = float("-inf")
        transceiver.sender.on_nack = self._on_nack
        transceiver.sender.on_keyframe_request = self._on_keyframe_request
        transceiver.sender.media_clock = self._media_clock

    def _media_clock(self, ssrc: int) -> tuple[int, float] | None:
        """The publisher's capture clock in this subscriber's timestamps, for our sender reports.

        As livekit's downtracks do: the publisher's latest sender report for the layer being
        forwarded, shifted by the rewriter's timestamp offset, so a subscriber syncing audio
        and video by their reports lines up what the publisher captured together. None
        (reports from what was sent) until the publisher reported.
        """
        layer = self.rewriter.current_layer
        incoming = self.track.layer_ssrc(layer) if layer is not None else None
        clock = self.track.media_clocks.get(incoming) if incoming is not None else None
        if clock is None:
            return None
        return (clock[0] + self.rewriter.timestamp_offset) & 0xFFFFFFFF, clock[1]

    def _ready(self) -> bool:
        return self.transceiver is not None and self._is_ready(self.transceiver)

    def _ready_at(self, now: float) -> bool:
        # Checked for every packet: trust a positive answer for a short while
        # (a connection going down or an m-line going inactive is noticed
        # within _READY_RECHECK_SECONDS; the transport drops sends meanwhile).
        if now < self._ready_until:
            return True
        if self._ready():
            self._ready_until = now + _READY_RECHECK_SECONDS
            return True
        return False

    def _resolve_payload_type(self) -> int | None:
        codec = self.track.codec
        if codec is None:
            return None
        wanted = codec.mime_type.lower()
        assert self.transceiver is not None
        for candidate in self.transceiver.codecs:
            if candidate.mime_type.lower() == wanted and candidate.payload_type is not None:
                return candidate.payload_type
        return None

    def _template(self, incoming: IncomingPacket) -> _ShapedTemplate:
        """The sender's header template for packets carrying extensions shaped like ``incoming``'s."""
        assert self.transceiver is not None and self._out_pt is not None and self._plain is not None
        ext_out = self._ext_out
        chosen = [(index, uri, size) for index, (uri, size) in enumerate(incoming.ext_shape) if uri in ext_out]
        if not chosen:
            return self._plain
        try:
            template = self.transceiver.sender.header_template(
                payload_type=self._out_pt, slots=tuple((uri, size) for _, uri, size in chosen)
            )
        except ValueError:
            logger.debug("extensions %s not forwarded", chosen, exc_info=True)
            return self._plain
        picks = tuple(index for index, _, _ in chosen)
        return template, None if len(picks) == len(incoming.ext_shape) else picks

    def forward(self, incoming: IncomingPacket, now: float) -> None:
        """Forward one publisher packet if it belongs to the layer this subscriber gets."""
        if self.disabled or (now >= self._ready_until and not self._ready_at(now)):
            return
        assert self.transceiver is not None
        sender = self.transceiver.sender
        if self._plain is None:
            self._out_pt = self._resolve_payload_type()
            if self._out_pt is None:
                return
            self._ext_out = dict(sender.header_extensions)
            self._plain = sender.header_template(payload_type=self._out_pt), ()
        rewriter = self.rewriter
        track = self.track
        target = track.select_layer(self.desired_layer, now)
        if rewriter.target_layer != target:
            rewriter.target_layer = target
            track.request_keyframe(target)
        mapped = rewriter.map_packet(
            incoming.layer, incoming.sequence_number, incoming.timestamp, incoming.payload, incoming.pictures, now
        )
        if mapped is None:
            return
        out_seq, out_ts, _ = mapped
        template, picks = self._plain
        shape = incoming.ext_shape
        if shape:
            shaped = self._templates.get(shape)
            if shaped is None:
                if len(self._templates) >= _MAX_HEADER_TEMPLATES:
                    self._templates.clear()
                shaped = self._templates[shape] = self._template(incoming)
            template, picks = shaped
        head = incoming.head
        if head and incoming.pictures is not None and rewriter.rewrites_picture_ids:
            head = rewriter.picture_id_prefix(incoming.pictures, head)
        if picks is None:
            values = incoming.ext_values
        else:
            extensions = incoming.extensions
            values = tuple([extensions[index][1] for index in picks])
        out = template.packet(out_seq, out_ts, incoming.marker, (head, incoming.rest), values)
        sender.send_rtp(out)
        self.cache.add(out_seq, out, now)
        self.packets_sent += 1

    def _on_nack(self, media_ssrc: int, lost: list[int]) -> None:
        if self.transceiver is None:
            return
        now = time.monotonic()
        for seq in lost:
            packet = self.cache.get(seq, now)
            if packet is not None:
                self.transceiver.sender.send_rtp(packet)
                self.retransmissions += 1
            else:
                self.nacks_unanswered += 1

    def _on_keyframe_request(self, media_ssrc: int) -> None:
        layer = self.rewriter.current_layer
        self.track.request_keyframe(layer if layer is not None else self.rewriter.target_layer)

    def set_desired_layer(self, layer: int) -> None:
        """Change the wanted layer; the switch happens at the next keyframe of it."""
        self.desired_layer = quality_to_layer(layer)
        target = self.track.select_layer(self.desired_layer, time.monotonic())
        if target != self.rewriter.current_layer:
            self.rewriter.target_layer = target
            self.track.request_keyframe(target)

    def maintain(self, now: float) -> None:
        """Periodic work: re-target when layers come and go, re-ask for keyframes while waiting."""
        if self.disabled or not self._ready():
            return
        target = self.track.select_layer(self.desired_layer, now)
        if target != self.rewriter.target_layer:
            self.rewriter.target_layer = target
        if self._needs_keyframe and self.rewriter.waiting_for_keyframe:
            self.track.request_keyframe(self.rewriter.target_layer)

    def close(self) -> None:
        """Detach from the sender's feedback callbacks."""
        if self.transceiver is not None:
            self.transceiver.sender.on_nack = None
            self.transceiver.sender.on_keyframe_request = None
            self.transceiver.sender.media_clock = None
        self.cache.clear()
