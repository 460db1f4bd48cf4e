"""WebRTC statistics in livekit's ``rtc.stats`` shape, filled from kitewire's real counters.

``Room.get_rtc_stats()`` and ``Track.get_stats()`` return :class:`RtcStats` objects: one
per reported thing, with exactly one of ``codec``, ``inbound_rtp``, ``outbound_rtp``,
``remote_inbound_rtp`` or ``peer_connection`` set (``WhichOneof("stats")`` names it), each
holding the nested parts livekit's protobufs have (``rtc``, ``stream``, ``received`` /
``sent``, ``inbound`` / ``outbound``, ...) with livekit's field names and units
(seconds for jitter and round-trip time, milliseconds since the epoch for timestamps).

What is filled: per SSRC the packets and payload bytes sent or received, losses, jitter
and round-trip time from the RTCP reports; per track the frames encoded, sent and
decoded, keyframes, encoded and decoded sizes, NACKs and keyframe requests, the
negotiated codec. Fields kitewire does not measure keep their zero value, as unset
protobuf fields read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from kitewire.engine.stats import CodecInfo, EngineStats, PublishedCounters, ReceivedCounters
from kitewire.transport.stats import InboundStreamStats, OutboundStreamStats

__all__ = [
    "CodecStats",
    "InboundRtpStreamStats",
    "OutboundRtpStreamStats",
    "PeerConnectionStats",
    "ReceivedRtpStreamStats",
    "RemoteInboundRtpStreamStats",
    "RtcStats",
    "RtcStatsData",
    "RtpStreamStats",
    "SentRtpStreamStats",
    "SessionRtcStats",
]


@dataclass
class RtcStatsData:
    """Identity of one stats object: its ``id`` and when it was taken (ms since the epoch)."""

    id: str = ""
    timestamp: int = 0


@dataclass
class CodecStats:
    """A negotiated codec."""

    payload_type: int = 0
    transport_id: str = ""
    mime_type: str = ""
    clock_rate: int = 0
    channels: int = 0
    sdp_fmtp_line: str = ""


@dataclass
class RtpStreamStats:
    """What every RTP stream has: its SSRC, kind and codec."""

    ssrc: int = 0
    kind: str = ""
    transport_id: str = ""
    codec_id: str = ""


@dataclass
class ReceivedRtpStreamStats:
    """Reception counters (RFC 3550)."""

    packets_received: int = 0
    packets_lost: int = 0
    jitter: float = 0.0


@dataclass
class InboundRtpStreamStats:
    """The receiving end of one video stream (decoder side)."""

    track_identifier: str = ""
    mid: str = ""
    remote_id: str = ""
    frames_decoded: int = 0
    key_frames_decoded: int = 0
    frames_received: int = 0
    frame_width: int = 0
    frame_height: int = 0
    bytes_received: int = 0
    nack_count: int = 0
    fir_count: int = 0
    pli_count: int = 0
    decoder_implementation: str = ""


@dataclass
class SentRtpStreamStats:
    """Send counters."""

    packets_sent: int = 0
    bytes_sent: int = 0


@dataclass
class OutboundRtpStreamStats:
    """The sending end of one video stream (one simulcast layer)."""

    mid: str = ""
    media_source_id: str = ""
    remote_id: str = ""
    rid: str = ""
    retransmitted_packets_sent: int = 0
    target_bitrate: float = 0.0
    frame_width: int = 0
    frame_height: int = 0
    frames_sent: int = 0
    frames_encoded: int = 0
    key_frames_encoded: int = 0
    nack_count: int = 0
    fir_count: int = 0
    pli_count: int = 0
    encoder_implementation: str = ""
    active: bool = False
    scalability_mode: str = ""


@dataclass
class RemoteInboundRtpStreamStats:
    """What the remote end reports about a stream we send (RTCP receiver reports)."""

    local_id: str = ""
    round_trip_time: float = 0.0
    total_round_trip_time: float = 0.0
    fraction_lost: float = 0.0
    round_trip_time_measurements: int = 0


@dataclass
class PeerConnectionStats:
    """A PeerConnection as a whole."""

    data_channels_opened: int = 0
    data_channels_closed: int = 0


@dataclass
class _Codec:
    rtc: RtcStatsData = field(default_factory=RtcStatsData)
    codec: CodecStats = field(default_factory=CodecStats)


@dataclass
class _InboundRtp:
    rtc: RtcStatsData = field(default_factory=RtcStatsData)
    stream: RtpStreamStats = field(default_factory=RtpStreamStats)
    received: ReceivedRtpStreamStats = field(default_factory=ReceivedRtpStreamStats)
    inbound: InboundRtpStreamStats = field(default_factory=InboundRtpStreamStats)


@dataclass
class _OutboundRtp:
    rtc: RtcStatsData = field(default_factory=RtcStatsData)
    stream: RtpStreamStats = field(default_factory=RtpStreamStats)
    sent: SentRtpStreamStats = field(default_factory=SentRtpStreamStats)
    outbound: OutboundRtpStreamStats = field(default_factory=OutboundRtpStreamStats)


@dataclass
class _RemoteInboundRtp:
    rtc: RtcStatsData = field(default_factory=RtcStatsData)
    stream: RtpStreamStats = field(default_factory=RtpStreamStats)
    received: ReceivedRtpStreamStats = field(default_factory=ReceivedRtpStreamStats)
    remote_inbound: RemoteInboundRtpStreamStats = field(default_factory=RemoteInboundRtpStreamStats)


@dataclass
class _PeerConnection:
    rtc: RtcStatsData = field(default_factory=RtcStatsData)
    pc: PeerConnectionStats = field(default_factory=PeerConnectionStats)


@dataclass
class RtcStats:
    """One stats object; exactly one of its fields is set (livekit's ``oneof stats``)."""

    codec: _Codec | None = None
    inbound_rtp: _InboundRtp | None = None
    outbound_rtp: _OutboundRtp | None = None
    remote_inbound_rtp: _RemoteInboundRtp | None = None
    peer_connection: _PeerConnection | None = None

    def WhichOneof(self, group: str) -> str | None:
        """The name of the set field (``group`` must be "stats"), as on a protobuf."""
        if group != "stats":
            raise ValueError(f'expected the oneof "stats", got {group!r}')
        for item in fields(self):
            if getattr(self, item.name) is not None:
                return item.name
        return None

    def HasField(self, name: str) -> bool:
        """Whether ``name`` is the set field, as on a protobuf."""
        if name not in {item.name for item in fields(self)}:
            raise ValueError(f"expected one of the stats fields, got {name!r}")
        return getattr(self, name) is not None


@dataclass
class SessionRtcStats:
    """What ``Room.get_rtc_stats()`` returns (livekit's ``rtc.RtcStats``): the stats of
    what is sent (``publisher_stats``) and of what is received (``subscriber_stats``)."""

    publisher_stats: list[RtcStats] = field(default_factory=list)
    subscriber_stats: list[RtcStats] = field(default_factory=list)


# -- building from kitewire's counters --------------------------------------------


def _codec_stats(codec: CodecInfo | None, stamp: RtcStatsData, transport_id: str) -> RtcStats | None:
    if codec is None:
        return None
    info = CodecStats(codec.payload_type, transport_id, codec.mime_type, codec.clock_rate, 0, codec.fmtp)
    return RtcStats(codec=_Codec(RtcStatsData(f"C{transport_id}_{codec.payload_type}", stamp.timestamp), info))


def _outbound(
    stream: OutboundStreamStats, track: PublishedCounters | None, stamp: RtcStatsData, transport_id: str
) -> list[RtcStats]:
    codec_id = f"C{transport_id}_{track.codec.payload_type}" if track and track.codec else ""
    layer = track.layers.get(stream.ssrc) if track is not None else None
    local_id = f"OT{transport_id}V{stream.ssrc}"
    outbound = OutboundRtpStreamStats(
        mid=stream.mid or "",
        media_source_id=track.track_sid if track else "",
        remote_id=f"RI{transport_id}V{stream.ssrc}",
        rid=(layer.rid if layer else None) or stream.rid or "",
        retransmitted_packets_sent=track.retransmissions if track and len(track.layers) == 1 else 0,
        target_bitrate=float(layer.target_bitrate) if layer else 0.0,
        frame_width=layer.width if layer else 0,
        frame_height=layer.height if layer else 0,
        frames_sent=layer.frames_sent if layer else 0,
        frames_encoded=layer.frames_sent if layer else 0,
        key_frames_encoded=layer.keyframes_sent if layer else 0,
        pli_count=track.keyframe_requests if track else 0,
        encoder_implementation="kitewire (PyAV)",
        active=True,
        scalability_mode="L1T1",
    )
    sent = RtcStats(
        outbound_rtp=_OutboundRtp(
            RtcStatsData(local_id, stamp.timestamp),
            RtpStreamStats(stream.ssrc, "video", transport_id, codec_id),
            SentRtpStreamStats(stream.packets_sent, stream.payload_bytes_sent),
            outbound,
        )
    )
    remote = RtcStats(
        remote_inbound_rtp=_RemoteInboundRtp(
            RtcStatsData(outbound.remote_id, stamp.timestamp),
            RtpStreamStats(stream.ssrc, "video", transport_id, codec_id),
            ReceivedRtpStreamStats(0, stream.packets_lost, 0.0),
            RemoteInboundRtpStreamStats(
                local_id=local_id,
                round_trip_time=stream.round_trip_time or 0.0,
                fraction_lost=stream.fraction_lost,
                round_trip_time_measurements=1 if stream.round_trip_time is not None else 0,
            ),
        )
    )
    return [sent, remote]


def _inbound(
    stream: InboundStreamStats, track: ReceivedCounters | None, stamp: RtcStatsData, transport_id: str
) -> RtcStats:
    codec_id = f"C{transport_id}_{track.codec.payload_type}" if track and track.codec else ""
    inbound = InboundRtpStreamStats(track_identifier=track.track_sid if track else "", mid=stream.mid or "")
    if track is not None:
        inbound.frames_decoded = track.frames_decoded
        inbound.key_frames_decoded = track.keyframes_decoded
        inbound.frames_received = track.frames_assembled
        inbound.frame_width, inbound.frame_height = track.frame_width, track.frame_height
        inbound.nack_count = track.nacks_sent
        inbound.pli_count = track.keyframe_requests_sent
        inbound.decoder_implementation = "kitewire (PyAV)"
    return RtcStats(
        inbound_rtp=_InboundRtp(
            RtcStatsData(f"IT{transport_id}V{stream.ssrc}", stamp.timestamp),
            RtpStreamStats(stream.ssrc, "video", transport_id, codec_id),
            ReceivedRtpStreamStats(stream.packets_received, stream.packets_lost, stream.jitter_seconds),
            inbound,
        )
    )


def _peer_connection(stamp: RtcStatsData, name: str) -> RtcStats:
    return RtcStats(peer_connection=_PeerConnection(RtcStatsData(name, stamp.timestamp), PeerConnectionStats()))


def build_rtc_stats(snapshot: EngineStats, *, track_sid: str | None = None) -> tuple[list[RtcStats], list[RtcStats]]:
    """(what is sent, what is received) of ``snapshot``, or only ``track_sid``'s streams."""
    stamp = RtcStatsData(timestamp=int(snapshot.timestamp * 1000))
    published = {item.mid: item for item in snapshot.published if track_sid in (None, item.track_sid)}
    received = {item.mid: item for item in snapshot.received if track_sid in (None, item.track_sid)}
    sent: list[RtcStats] = []
    got: list[RtcStats] = []
    for transport_id, pc in (("T01", snapshot.publisher), ("T02", snapshot.subscriber)):
        if pc is None:
            continue
        if track_sid is None:
            (sent if transport_id == "T01" else got).append(_peer_connection(stamp, f"P{transport_id}"))
        for out in pc.outbound:
            if out.mid in published:
                sent.extend(_outbound(out, published[out.mid], stamp, transport_id))
        for entry in pc.inbound:
            if entry.mid in received:
                got.append(_inbound(entry, received[entry.mid], stamp, transport_id))
    for item in published.values():
        codec = _codec_stats(item.codec, stamp, "T01")
        if codec is not None:
            sent.append(codec)
    for entry_counters in received.values():
        codec = _codec_stats(entry_counters.codec, stamp, "T02" if snapshot.subscriber is not None else "T01")
        if codec is not None:
            got.append(codec)
    return sent, got
