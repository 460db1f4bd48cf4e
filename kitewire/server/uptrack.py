"""The up-track: one track a publisher sends, fanned out to its downtracks.

Packets arrive from ``kitewire.transport`` as raw bytes with a parsed header;
each is prepared once (:class:`IncomingPacket`) for every
:class:`~kitewire.server.downtrack.DownTrack` of the track, which rewrites and
sends it. Nothing is decoded.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from livekit.protocol import models as pb_models

from kitewire.media.keyframe import is_keyframe
from kitewire.transport import Codec, RtpHeader, RtpReceiver, Transceiver
from kitewire.transport import rtp as rtp_ext
from kitewire.transport.rtcp import SenderReport, ntp_to_unix

from .dynacast import DynacastQuality
from .forwarder import PaddingSequenceMap, PictureIds, UplinkGaps, picture_id_reader
from .speakers import AudioLevelMeter

if TYPE_CHECKING:
    from .downtrack import DownTrack
    from .participant import Participant

__all__ = ["RID_TO_LAYER", "IncomingPacket", "PublishedTrack", "quality_to_layer", "stream_of_source"]

logger = logging.getLogger("kitewire.server")

#: livekit's simulcast rids, lowest first; the index is the VideoQuality value.
RID_TO_LAYER: dict[str, int] = {"q": 0, "h": 1, "f": 2}

# A layer is considered live when it had a packet this recently (seconds).
_LAYER_LIVE_SECONDS = 1.0
# At most one keyframe request per layer per this many seconds (PLI storms hurt publishers).
_KEYFRAME_REQUEST_INTERVAL = 0.5
# A request no keyframe answered within this long was probably lost on the way
# (on a lossy uplink the PLI is a datagram like any other): ask again sooner.
_UNANSWERED_KEYFRAME_RETRY = 0.2
# Gaps up to this many packets are NACKed to the publisher; larger jumps are a restart.
_MAX_NACK_GAP = 64
# Extensions copied from the publisher's packets to the subscriber's.
_FORWARDED_EXTENSIONS = (rtp_ext.URI_VIDEO_ORIENTATION, rtp_ext.URI_ABS_CAPTURE_TIME, rtp_ext.URI_AUDIO_LEVEL)
# SSRCs of one track whose padding renumbering and uplink loss tracking are kept (3 simulcast layers, plus restarts).
_MAX_SSRCS_PER_TRACK = 8
# How often the publisher's extension ids are looked up again (they only change on renegotiation).
_EXTENSION_IDS_REFRESH_SECONDS = 1.0
# A publisher whose sender reports' wall clock is further than this from ours (seconds) is
# taken as sampling when its reports arrive (its own clock is off).
_MAX_PUBLISHER_CLOCK_OFFSET = 5.0


class IncomingPacket:
    """One publisher packet as every downtrack of the track needs it, prepared once.

    ``sequence_number`` is in the layer's compacted space (padding-only packets
    taken out); ``head``/``rest`` split the payload where a VP8 or VP9 descriptor's
    rewritable fields end (``head`` empty for other codecs); ``extensions``
    are the forwarded ones present, as (URI, value).
    """

    __slots__ = (
        "ext_shape",
        "ext_values",
        "extensions",
        "head",
        "layer",
        "marker",
        "payload",
        "pictures",
        "rest",
        "sequence_number",
        "timestamp",
    )

    def __init__(
        self,
        layer: int,
        sequence_number: int,
        timestamp: int,
        marker: bool,
        payload: memoryview,
        pictures: PictureIds | None,
        extensions: tuple[tuple[str, bytes], ...],
    ) -> None:
        self.layer = layer
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.marker = marker
        self.payload = payload
        self.pictures = pictures
        self.extensions = extensions
        # Which extensions, of which sizes: downtracks keep a header template per shape.
        self.ext_shape = tuple((uri, len(value)) for uri, value in extensions) if extensions else ()
        # The values alone, for downtracks whose header template takes all of them.
        self.ext_values = tuple(value for _, value in extensions) if extensions else ()
        if pictures is not None and pictures.end:
            self.head = bytes(payload[: pictures.end])
            self.rest = payload[pictures.end :]
        else:
            self.head = b""
            self.rest = payload


def stream_of_source(source: int) -> str:
    """The stream a track of ``source`` joins when its AddTrackRequest names none (livekit's grouping)."""
    if source in (pb_models.TrackSource.CAMERA, pb_models.TrackSource.MICROPHONE):
        return "camera"
    if source in (pb_models.TrackSource.SCREEN_SHARE, pb_models.TrackSource.SCREEN_SHARE_AUDIO):
        return "screen"
    return "unknown"


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
        # Layers asked for a keyframe that has not come yet: only their packets are checked for one.
        self._keyframe_awaited: set[int] = set()
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
        #: Audio tracks: how loud the publisher is (active speakers), from the audio-level extension.
        self.audio_level = AudioLevelMeter() if info.type == pb_models.AUDIO else None
        self._audio_level_id: int | None = None
        self._audio_level_id_read_at = float("-inf")
        #: Video tracks: the best layer subscribers want, as announced to the publisher (dynacast).
        self.dynacast = DynacastQuality() if info.type == pb_models.VIDEO else None
        #: By incoming SSRC: the publisher's latest sender report as (RTP timestamp, the Unix time it
        #: stands for): its capture clock, which downtracks carry into their own reports.
        self.media_clocks: dict[int, tuple[int, float]] = {}
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
        transceiver.receiver.on_sender_report = self.on_sender_report

    def on_sender_report(self, report: SenderReport) -> None:
        """Keep the publisher's RTP <-> wallclock mapping of one SSRC (bounded like the other per-SSRC state)."""
        wall = ntp_to_unix(report.ntp_time)
        arrived = time.time()
        if abs(arrived - wall) > _MAX_PUBLISHER_CLOCK_OFFSET:
            wall = arrived
        if report.ssrc not in self.media_clocks and len(self.media_clocks) >= _MAX_SSRCS_PER_TRACK:
            self.media_clocks.pop(next(iter(self.media_clocks)))
        self.media_clocks[report.ssrc] = (report.rtp_timestamp, wall)

    def layer_ssrc(self, layer: int) -> int | None:
        """The incoming SSRC of ``layer``, once a packet of it arrived."""
        return self._layer_ssrc.get(layer)

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
            if layer in self._keyframe_awaited and self._starts_keyframe(packet, header):
                self._keyframe_awaited.discard(layer)
        meter = self.audio_level
        if meter is not None and header.extensions:
            self._observe_audio_level(meter, header, now)
        if self.codec is None or header.payload_type not in self._pt_to_codec:
            codec = self._pt_to_codec.get(header.payload_type)
            if codec is None:
                return
            self.codec = codec
        downtracks = self.downtracks
        if not downtracks:
            return
        payload = memoryview(packet)[header.payload_offset : header.payload_end]
        reader = picture_id_reader(self.codec.mime_type)
        pictures = reader(payload) if reader is not None else None
        extensions: tuple[tuple[str, bytes], ...] = ()
        if header.extensions:
            if now - self._ext_ids_read_at > _EXTENSION_IDS_REFRESH_SECONDS:
                receiver = self.receiver
                in_ids = receiver.header_extensions if receiver is not None else {}
                self._forwarded_ext_ids = tuple((uri, in_ids[uri]) for uri in _FORWARDED_EXTENSIONS if uri in in_ids)
                self._ext_ids_read_at = now
            present = header.extensions
            extensions = tuple((uri, present[ext_id]) for uri, ext_id in self._forwarded_ext_ids if ext_id in present)
        incoming = IncomingPacket(
            layer, sequence_number, header.timestamp, header.marker, payload, pictures, extensions
        )
        for downtrack in list(downtracks.values()):
            try:
                downtrack.forward(incoming, now)
            except Exception:  # one broken subscriber must not stop the others
                logger.exception("forwarding to %s failed", downtrack.subscriber.identity)

    def _starts_keyframe(self, packet: bytes, header: RtpHeader) -> bool:
        codec = self.codec
        return codec is not None and is_keyframe(
            codec.mime_type, memoryview(packet)[header.payload_offset : header.payload_end]
        )

    def _observe_audio_level(self, meter: AudioLevelMeter, header: RtpHeader, now: float) -> None:
        if now - self._audio_level_id_read_at > _EXTENSION_IDS_REFRESH_SECONDS:
            receiver = self.receiver
            self._audio_level_id = receiver.header_extensions.get(rtp_ext.URI_AUDIO_LEVEL) if receiver else None
            self._audio_level_id_read_at = now
        if self._audio_level_id is None:
            return
        value = header.extensions.get(self._audio_level_id)
        if value:
            meter.observe(value[0] & 0x7F, header.timestamp, now)

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
            since = now - self._last_keyframe_request.get(one, 0.0)
            unanswered = one in self._keyframe_awaited
            if since < (_UNANSWERED_KEYFRAME_RETRY if unanswered else _KEYFRAME_REQUEST_INTERVAL):
                continue
            self._last_keyframe_request[one] = now
            self._keyframe_awaited.add(one)
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
            self.transceiver.receiver.on_sender_report = None
