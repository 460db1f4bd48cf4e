"""A snapshot of a session's real counters: the PeerConnections' per-SSRC statistics
and the encode/decode pipelines' frame counts, as plain (picklable) values.

``kitewire.rtc.stats`` turns it into livekit's ``RtcStats`` shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from kitewire.transport.stats import PeerConnectionStats

if TYPE_CHECKING:
    # the pipelines only in annotations: the application's side of a media process
    # unpickles these snapshots without loading the engine
    from kitewire.transport import PeerConnection
    from kitewire.transport.codecs import Codec

    from .publisher import VideoPublishPipeline
    from .receiver import VideoReceivePipeline

__all__ = [
    "CodecInfo",
    "EngineStats",
    "LayerCounters",
    "PublishedCounters",
    "ReceivedCounters",
    "pc_stats",
    "pipeline_counters",
]


class LayerCounters(NamedTuple):
    """One sent layer's counters, for statistics (here, not beside the encoder:
    the application unpickles it without loading the engine)."""

    rid: str | None
    frames_sent: int
    keyframes_sent: int
    width: int
    height: int
    target_bitrate: int


@dataclass(frozen=True)
class CodecInfo:
    """The codec negotiated on one m-line."""

    payload_type: int
    mime_type: str
    clock_rate: int
    fmtp: str


@dataclass(frozen=True)
class PublishedCounters:
    """One published track's encoder side."""

    track_sid: str
    mid: str | None
    codec: CodecInfo | None
    frames_encoded: int
    keyframes_sent: int
    keyframe_requests: int
    retransmissions: int
    layers: dict[int, LayerCounters] = field(default_factory=dict)
    """Each sent layer's counters, by SSRC."""


@dataclass(frozen=True)
class ReceivedCounters:
    """One subscribed track's decoder side."""

    track_sid: str
    mid: str | None
    codec: CodecInfo | None
    frames_assembled: int
    frames_decoded: int
    keyframes_decoded: int
    nacks_sent: int
    keyframe_requests_sent: int
    frame_width: int
    frame_height: int


@dataclass(frozen=True)
class EngineStats:
    """Everything :meth:`RtcEngine.get_stats` measures, at one moment."""

    timestamp: float
    """Wall-clock time of the snapshot, in seconds since the epoch."""
    publisher: PeerConnectionStats | None
    subscriber: PeerConnectionStats | None
    """The PeerConnection remote tracks arrive on (the publisher's in single-PC mode)."""
    published: list[PublishedCounters] = field(default_factory=list)
    received: list[ReceivedCounters] = field(default_factory=list)


def _codec_info(codecs: list[Codec]) -> CodecInfo | None:
    for codec in codecs:
        if codec.payload_type is not None:
            return CodecInfo(codec.payload_type, codec.mime_type, codec.clock_rate, codec.fmtp)
    return None


def pipeline_counters(
    published: Mapping[str, tuple[str | None, list[Codec], VideoPublishPipeline]],
    received: Mapping[str, tuple[str | None, list[Codec], VideoReceivePipeline]],
) -> tuple[list[PublishedCounters], list[ReceivedCounters]]:
    """The counters of the pipelines, by track sid: ``(mid, negotiated codecs, pipeline)``."""
    sent = [
        PublishedCounters(
            track_sid=sid,
            mid=mid,
            codec=_codec_info(codecs),
            frames_encoded=pipeline.frames_encoded,
            keyframes_sent=pipeline.keyframes_sent,
            keyframe_requests=pipeline.keyframe_requests,
            retransmissions=pipeline.retransmissions,
            layers=pipeline.layer_counters(),
        )
        for sid, (mid, codecs, pipeline) in published.items()
    ]
    got = [
        ReceivedCounters(
            track_sid=sid,
            mid=mid,
            codec=_codec_info(codecs),
            frames_assembled=pipeline.frames_assembled,
            frames_decoded=pipeline.frames_decoded,
            keyframes_decoded=pipeline.keyframes_decoded,
            nacks_sent=pipeline.nacks_sent,
            keyframe_requests_sent=pipeline.keyframe_requests_sent,
            frame_width=pipeline.frame_width,
            frame_height=pipeline.frame_height,
        )
        for sid, (mid, codecs, pipeline) in received.items()
    ]
    return sent, got


def pc_stats(pc: PeerConnection | None) -> PeerConnectionStats | None:
    """``pc.get_stats()``, or None without a PeerConnection."""
    return None if pc is None else pc.get_stats()
