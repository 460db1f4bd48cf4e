"""Forwarding media between participants: uptracks (what a publisher sends)
and downtracks (what one subscriber receives of one uptrack).

Packets arrive from ``kitewire.transport`` as raw bytes with a parsed header,
are rewritten by an ``RtpRewriter`` per downtrack and sent with the
subscriber's ``RtpSender``. Nothing is decoded.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from livekit.protocol import models as pb_models

from kitewire.media.vp8_descriptor import Vp8Descriptor
from kitewire.media.vp8_descriptor import read_vp8_descriptor as parse_vp8_descriptor
from kitewire.transport import Codec, RtpHeader, RtpReceiver, Transceiver
from kitewire.transport import rtp as rtp_ext

from .forwarder import (
    PaddingSequenceMap,
    RtpRewriter,
    SentPacketCache,
    UplinkGaps,
)

if TYPE_CHECKING:
    from .participant import Participant

__all__ = ["RID_TO_LAYER", "DownTrack", "PublishedTrack", "quality_to_layer"]

logger = logging.getLogger("kitewire.server")

#: livekit's simulcast rids, lowest first; the index is the VideoQuality value.
RID_TO_LAYER: dict[str, int] = {"q": 0, "h": 1, "f": 2}

# A layer is considered live when it had a packet this recently (seconds).
_LAYER_LIVE_SECONDS = 1.0
# At most one keyframe request per layer per this many seconds (PLI storms hurt publishers).
_KEYFRAME_REQUEST_INTERVAL = 0.5
# Gaps up to this many packets are NACKed to the publisher; larger jumps are a restart.
_MAX_NACK_GAP = 64
# Extensions copied from the publisher's packets to the subscriber's.
_FORWARDED_EXTENSIONS = (rtp_ext.URI_VIDEO_ORIENTATION, rtp_ext.URI_ABS_CAPTURE_TIME)
# SSRCs of one track whose padding renumbering and uplink loss tracking are kept (3 simulcast layers, plus restarts).
_MAX_SSRCS_PER_TRACK = 8
# How often the publisher's extension ids are looked up again (they only change on renegotiation).
_EXTENSION_IDS_REFRESH_SECONDS = 1.0
# How long a downtrack trusts a positive readiness check (connection state and m-line direction).
_READY_RECHECK_SECONDS = 0.05
# First four header fields: V/P/X/CC, M/PT, sequence number, timestamp.
_pack_header_start = struct.Struct("!BBHI").pack
# Header templates kept per downtrack (one per shape of forwarded extensions; a
# publisher varying value sizes must not grow this without bound).
_MAX_HEADER_TEMPLATES = 16

# A header template: first byte, the header from byte 8 on, and for each
# forwarded extension value (index into IncomingPacket.extensions) where it goes.
# None instead of the spans: build each packet's header with the sender (layout not found).
_HeaderTemplate = tuple[int, bytes, tuple[tuple[int, int], ...] | None]


class IncomingPacket:
    """One publisher packet as every downtrack of the track needs it, prepared once.

    ``sequence_number`` is in the layer's compacted space (padding-only packets
    taken out); ``head``/``rest`` split the payload where a VP8 descriptor's
    rewritable fields end (``head`` empty for other codecs); ``extensions``
    are the forwarded ones present, as (URI, value).
    """

    __slots__ = (
        "ext_shape",
        "extensions",
        "head",
        "layer",
        "marker",
        "payload",
        "rest",
        "sequence_number",
        "timestamp",
        "vp8",
    )

    def __init__(
        self,
        layer: int,
        sequence_number: int,
        timestamp: int,
        marker: bool,
        payload: memoryview,
        vp8: Vp8Descriptor | None,
        extensions: tuple[tuple[str, bytes], ...],
    ) -> None:
        self.layer = layer
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.marker = marker
        self.payload = payload
        self.vp8 = vp8
        self.extensions = extensions
        # Which extensions, of which sizes: downtracks keep a header template per shape.
        self.ext_shape = tuple((uri, len(value)) for uri, value in extensions) if extensions else ()
        if vp8 is not None and vp8.end:
            self.head = bytes(payload[: vp8.end])
            self.rest = payload[vp8.end :]
        else:
            self.head = b""
            self.rest = payload


def quality_to_layer(quality: int) -> int:
    """VideoQuality LOW/MEDIUM/HIGH -> layer index 0/1/2."""
    return max(0, min(2, quality))


class PublishedTrack:
    """One track a participant publishes, with the subscribers it feeds."""

    def __init__(self, publisher: Participant, info: pb_models.TrackInfo, transceiver: Transceiver | None) -> None:
        self.publisher = publisher
        self.info = info
        self.transceiver = transceiver
        self.downtracks: dict[str, DownTrack] = {}  # subscriber sid -> downtrack
        self._layer_ssrc: dict[int, int] = {}
        self._layer_last_seen: dict[int, float] = {}
        self._last_keyframe_request: dict[int, float] = {}
        self._uplink_gaps: dict[int, UplinkGaps] = {}  # by incoming SSRC
        self.nacks_sent = 0
        self._live: list[int] = []
        self._live_computed_at = float("-inf")
        self._live_known = 0
        self._pt_to_codec: dict[int, Codec] = {}
        self.codec: Codec | None = None
        self.packets_received = 0
        self._padding_maps: dict[int, PaddingSequenceMap] = {}  # by incoming SSRC
        self.padding_dropped = 0
        self._select_cache: dict[int, int] = {}
        self._select_cache_live: list[int] | None = None
        self._forwarded_ext_ids: tuple[tuple[str, int], ...] = ()
        self._ext_ids_read_at = float("-inf")
        self.closed = False
        if transceiver is not None:
            self.bind(transceiver)

    @property
    def sid(self) -> str:
        """The track sid (``TR_...``)."""
        return self.info.sid

    @property
    def kind(self) -> str:
        """ "video" or "audio"."""
        return "audio" if self.info.type == pb_models.AUDIO else "video"

    @property
    def receiver(self) -> RtpReceiver | None:
        """The publisher-side receiver, once media is bound."""
        return self.transceiver.receiver if self.transceiver is not None else None

    def bind(self, transceiver: Transceiver) -> None:
        """Attach the publisher's m-line carrying this track and start receiving."""
        self.transceiver = transceiver
        codecs = [c for c in transceiver.codecs if not c.mime_type.lower().endswith(("/rtx", "/red", "/ulpfec"))]
        self._pt_to_codec = {c.payload_type: c for c in transceiver.codecs if c.payload_type is not None}
        if codecs:
            self.codec = codecs[0]
            self.info.mime_type = codecs[0].mime_type
        if transceiver.mid is not None:
            self.info.mid = transceiver.mid
        transceiver.receiver.on_rtp = self.on_rtp

    def layer_of(self, header: RtpHeader) -> int:
        """The simulcast layer index of a packet (0 when not simulcast)."""
        rid = header.rid
        if not rid:
            return 0
        layer = RID_TO_LAYER.get(rid)
        if layer is not None:
            return layer
        receiver = self.receiver
        if receiver is not None and rid in receiver.rids:
            return receiver.rids.index(rid)
        return 0

    @property
    def simulcast(self) -> bool:
        """True when more than one layer was announced or seen."""
        return len(self._layer_ssrc) > 1 or len(self.info.layers) > 1

    def live_layers(self, now: float) -> list[int]:
        """Layers with recent packets, lowest first."""
        # Asked for every packet of every downtrack: recompute at most every 100 ms
        # (or at once when a layer is seen for the first time).
        if now - self._live_computed_at > 0.1 or len(self._layer_last_seen) != self._live_known:
            self._live = sorted(
                layer for layer, seen in self._layer_last_seen.items() if now - seen < _LAYER_LIVE_SECONDS
            )
            self._live_computed_at = now
            self._live_known = len(self._layer_last_seen)
        return self._live

    def on_rtp(self, packet: bytes, header: RtpHeader) -> None:
        """Per-packet callback from the transport: fan out to every downtrack."""
        if self.closed:
            return
        layer = self.layer_of(header)
        now = time.monotonic()
        self._nack_gaps(header)
        ssrc = header.ssrc
        self._layer_ssrc[layer] = ssrc
        self.packets_received += 1
        padding_only = header.payload_offset >= header.payload_end
        padding_map = self._padding_maps.get(ssrc)
        if padding_map is None:
            if len(self._padding_maps) >= _MAX_SSRCS_PER_TRACK:
                # A publisher cycling SSRCs must not grow this: forget the oldest.
                del self._padding_maps[next(iter(self._padding_maps))]
            padding_map = self._padding_maps[ssrc] = PaddingSequenceMap()
        sequence_number = padding_map.map(header.sequence_number, padding_only)
        if sequence_number is None:
            # A bandwidth probe: nothing for subscribers, and a layer sending
            # only these is not live (it would never give them a keyframe).
            self.padding_dropped += 1
            return
        if not padding_only:
            self._layer_last_seen[layer] = now
        if self.codec is None or header.payload_type not in self._pt_to_codec:
            codec = self._pt_to_codec.get(header.payload_type)
            if codec is None:
                return
            self.codec = codec
        downtracks = self.downtracks
        if not downtracks:
            return
        payload = memoryview(packet)[header.payload_offset : header.payload_end]
        vp8 = parse_vp8_descriptor(payload) if self.codec.mime_type.lower() == "video/vp8" else None
        extensions: tuple[tuple[str, bytes], ...] = ()
        if header.extensions:
            if now - self._ext_ids_read_at > _EXTENSION_IDS_REFRESH_SECONDS:
                receiver = self.receiver
                in_ids = receiver.header_extensions if receiver is not None else {}
                self._forwarded_ext_ids = tuple((uri, in_ids[uri]) for uri in _FORWARDED_EXTENSIONS if uri in in_ids)
                self._ext_ids_read_at = now
            present = header.extensions
            extensions = tuple((uri, present[ext_id]) for uri, ext_id in self._forwarded_ext_ids if ext_id in present)
        incoming = IncomingPacket(layer, sequence_number, header.timestamp, header.marker, payload, vp8, extensions)
        for downtrack in list(downtracks.values()):
            try:
                downtrack.forward(incoming, now)
            except Exception:  # one broken subscriber must not stop the others
                logger.exception("forwarding to %s failed", downtrack.subscriber.identity)

    def newest_sequence_numbers(self) -> dict[int, int]:
        """The newest incoming sequence number of each SSRC the publisher sends on this track."""
        return {ssrc: gaps.highest for ssrc, gaps in self._uplink_gaps.items() if gaps.highest >= 0}

    def _nack_gaps(self, header: RtpHeader) -> None:
        """Ask the publisher to resend packets missing before this one (loss on its uplink)."""
        ssrc = header.ssrc
        gaps = self._uplink_gaps.get(ssrc)
        if gaps is None:
            if len(self._uplink_gaps) >= _MAX_SSRCS_PER_TRACK:
                del self._uplink_gaps[next(iter(self._uplink_gaps))]
            gaps = self._uplink_gaps[ssrc] = UplinkGaps(max_gap=_MAX_NACK_GAP)
        missing = gaps.missing(header.sequence_number)
        if missing and self.receiver is not None:
            try:
                self.receiver.send_nack(ssrc, list(missing))
                self.nacks_sent += 1
            except Exception:
                logger.debug("NACK to the publisher failed", exc_info=True)

    def request_keyframe(self, layer: int | None = None) -> bool:
        """Ask the publisher for a keyframe on ``layer`` (rate-limited); True if sent."""
        receiver = self.receiver
        if receiver is None or self.kind != "video":
            return False
        now = time.monotonic()
        layers = [layer] if layer is not None and layer in self._layer_ssrc else list(self._layer_ssrc)
        sent = False
        for one in layers:
            if now - self._last_keyframe_request.get(one, 0.0) < _KEYFRAME_REQUEST_INTERVAL:
                continue
            self._last_keyframe_request[one] = now
            try:
                receiver.request_keyframe(self._layer_ssrc[one])
                sent = True
            except Exception:
                logger.debug("keyframe request failed", exc_info=True)
        return sent

    def select_layer(self, desired: int, now: float) -> int:
        """The layer to send a subscriber who wants ``desired``: the best live one not above it."""
        live = self.live_layers(now)
        if not live:
            return desired if self.simulcast else 0
        # Asked per packet per downtrack; the answer only changes with the live list.
        if live is not self._select_cache_live:
            self._select_cache = {}
            self._select_cache_live = live
        chosen = self._select_cache.get(desired)
        if chosen is None:
            below = [layer for layer in live if layer <= desired]
            chosen = self._select_cache[desired] = max(below) if below else min(live)
        return chosen

    def layer_for_size(self, width: int, height: int) -> int:
        """Smallest announced layer at least ``width``x``height`` (highest if none is)."""
        layers = sorted(self.info.layers, key=lambda layer: layer.width * layer.height)
        if not layers:
            return 2
        for layer in layers:
            if layer.width >= width and layer.height >= height:
                return quality_to_layer(layer.quality)
        return quality_to_layer(layers[-1].quality)

    def close(self) -> None:
        """Stop receiving; downtracks are removed by the room."""
        self.closed = True
        if self.transceiver is not None:
            self.transceiver.receiver.on_rtp = None


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
        self.cache = SentPacketCache(capacity=512, max_age=1.5)
        self.packets_sent = 0
        self.retransmissions = 0
        self.nacks_unanswered = 0
        self._out_pt: int | None = None
        self._ext_out: dict[str, int] = {}
        # The outgoing header after the timestamp (SSRC and extension block)
        # and its first byte, for packets without forwarded extensions.
        self._plain_first_byte = 0x80
        self._plain_tail = b""
        self._templates: dict[tuple[tuple[str, int], ...], _HeaderTemplate] = {}
        self._ready_until = float("-inf")
        if transceiver is not None:
            self.bind(transceiver)

    def bind(self, transceiver: Transceiver) -> None:
        """Send through ``transceiver`` (an m-line of the subscriber's PeerConnection)."""
        self.transceiver = transceiver
        self._out_pt = None
        self._templates = {}
        self._ready_until = float("-inf")
        transceiver.sender.on_nack = self._on_nack
        transceiver.sender.on_keyframe_request = self._on_keyframe_request

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

    def _header_tail(self, extensions: dict[str, bytes] | None) -> tuple[int, bytes]:
        """(first byte, bytes 8.. of the header) as the sender would build them with ``extensions``."""
        assert self.transceiver is not None and self._out_pt is not None
        template = self.transceiver.sender.build_packet(
            b"", payload_type=self._out_pt, sequence_number=0, timestamp=0, extensions=extensions
        )
        return template[0], template[8:]

    def _template(self, incoming: IncomingPacket) -> _HeaderTemplate:
        """The header template for packets carrying extensions shaped like ``incoming``'s.

        Built by the sender itself (so the layout is exactly what
        ``build_packet`` writes); where each value goes is found by building
        it again with that value's bytes changed.
        """
        ext_out = self._ext_out
        chosen = [(index, uri, size) for index, (uri, size) in enumerate(incoming.ext_shape) if uri in ext_out]
        if not chosen:
            return self._plain_first_byte, self._plain_tail, ()
        zeros = {uri: bytes(size) for _, uri, size in chosen}
        first_byte, tail = self._header_tail(zeros)
        spans: list[tuple[int, int]] = []
        for index, uri, size in chosen:
            _, changed = self._header_tail({**zeros, uri: b"\xff" * size})
            where = [i for i in range(min(len(tail), len(changed))) if tail[i] != changed[i]]
            if len(changed) != len(tail) or len(where) != size or where[-1] - where[0] != size - 1:
                return first_byte, tail, None
            spans.append((where[0], index))
        return first_byte, tail, tuple(spans)

    def forward(self, incoming: IncomingPacket, now: float) -> None:
        """Forward one publisher packet if it belongs to the layer this subscriber gets."""
        if self.disabled or (now >= self._ready_until and not self._ready_at(now)):
            return
        assert self.transceiver is not None
        sender = self.transceiver.sender
        if self._out_pt is None:
            self._out_pt = self._resolve_payload_type()
            if self._out_pt is None:
                return
            self._ext_out = dict(sender.header_extensions)
            # The SSRC and the mid extension are the same in every packet: build
            # that part of the header once.
            self._plain_first_byte, self._plain_tail = self._header_tail(None)
        rewriter = self.rewriter
        track = self.track
        target = track.select_layer(self.desired_layer, now)
        if rewriter.target_layer != target:
            rewriter.target_layer = target
            track.request_keyframe(target)
        mapped = rewriter.map_packet(
            incoming.layer, incoming.sequence_number, incoming.timestamp, incoming.payload, incoming.vp8, now
        )
        if mapped is None:
            return
        out_seq, out_ts, _ = mapped
        first_byte = self._plain_first_byte
        tail: bytes | bytearray = self._plain_tail
        shape = incoming.ext_shape
        if shape:
            template = self._templates.get(shape)
            if template is None:
                if len(self._templates) >= _MAX_HEADER_TEMPLATES:
                    self._templates.clear()
                template = self._templates[shape] = self._template(incoming)
            first_byte, tail, spans = template
            if spans:
                patched = bytearray(tail)
                values = incoming.extensions
                for start, index in spans:
                    value = values[index][1]
                    patched[start : start + len(value)] = value
                tail = patched
            elif spans is None:
                ext_out = self._ext_out
                first_byte, tail = self._header_tail(
                    {uri: value for uri, value in incoming.extensions if uri in ext_out}
                )
        head = incoming.head
        if head and incoming.vp8 is not None and rewriter.is_vp8:
            head = rewriter.vp8_prefix(incoming.vp8, head)
        out = b"".join(
            (
                _pack_header_start(first_byte, (0x80 if incoming.marker else 0) | self._out_pt, out_seq, out_ts),
                tail,
                head,
                incoming.rest,
            )
        )
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
        self.cache.clear()
