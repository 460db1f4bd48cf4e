"""livekit's default video encodings and simulcast layer plan."""

from __future__ import annotations

from dataclasses import dataclass

QUALITY_LOW = 0
QUALITY_MEDIUM = 1
QUALITY_HIGH = 2
"""livekit ``VideoQuality`` numbering (protobuf enum values)."""


@dataclass(frozen=True, slots=True)
class VideoPreset:
    """A resolution with livekit's default max bitrate (bps) and framerate."""

    width: int
    height: int
    max_bitrate: int
    max_framerate: float


@dataclass(frozen=True, slots=True)
class VideoLayerPlan:
    """One encoding a publisher sends: RTP rid, livekit quality, size, limits."""

    rid: str
    quality: int
    width: int
    height: int
    max_bitrate: int
    max_framerate: float
    scale_resolution_down_by: float

    def to_proto(self, ssrc: int = 0) -> object:
        """``livekit.protocol.models.VideoLayer`` for an AddTrackRequest."""
        raise NotImplementedError


VIDEO_PRESETS: dict[str, VideoPreset] = {}
"""livekit's 16:9 / 4:3 presets by name (e.g. "h720", "h540_43")."""


def default_video_preset(width: int, height: int) -> VideoPreset:
    """livekit's preset for publishing a ``width``x``height`` track."""
    raise NotImplementedError


def plan_video_layers(
    width: int,
    height: int,
    *,
    simulcast: bool = True,
    max_bitrate: int | None = None,
    max_framerate: float | None = None,
) -> list[VideoLayerPlan]:
    """Encodings livekit's SDKs send for a ``width``x``height`` publish, lowest first.

    Without simulcast: one layer (rid "q"... see implementation notes) using
    the default preset or the given limits.
    """
    raise NotImplementedError
