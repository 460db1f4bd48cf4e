"""livekit's default video encodings and simulcast layer plan.

The numbers and the selection rules follow livekit's client SDKs:
rust-sdks ``livekit/src/room/options.rs`` (``compute_video_encodings``,
``compute_appropriate_encoding``, ``into_rtp_encodings``,
``video_layers_from_encodings`` and the ``video``/``video43`` preset tables),
which is what the Python ``livekit`` package runs, and client-sdk-js
``src/room/participant/publishUtils.ts`` (``computeVideoEncodings``,
``determineAppropriateEncoding``) with ``src/room/track/options.ts``
(``VideoPresets``/``VideoPresets43``) for the browser. The two differ in
small ways, selected with ``sdk=``:

* picking the preset for a size: rust takes the first preset *wider* than the
  longer side (1280x720 gets the 1080p numbers, 3 Mbps), JS the first at
  least as wide (1280x720 gets 1.7 Mbps);
* two-layer simulcast (longer side 480..959): rust uses the *medium* default
  preset for "q", JS the *low* one;
* JS caps every layer's framerate at the top layer's;
* without simulcast rust still names its single encoding rid "q" (and so
  reports quality LOW), JS sends no rid and reports HIGH.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

QUALITY_LOW = 0
QUALITY_MEDIUM = 1
QUALITY_HIGH = 2
"""livekit ``VideoQuality`` numbering (protobuf enum values)."""

_RIDS = ("q", "h", "f")
_QUALITY_BY_RID = {"q": QUALITY_LOW, "h": QUALITY_MEDIUM, "f": QUALITY_HIGH}


@dataclass(frozen=True, slots=True)
class VideoPreset:
    """A resolution with livekit's default max bitrate (bps) and framerate."""

    width: int
    height: int
    max_bitrate: int
    max_framerate: float


@dataclass(frozen=True, slots=True)
class VideoLayerPlan:
    """One encoding a publisher sends: RTP rid, livekit quality, size, limits.

    ``rid`` is "" for a single encoding sent without rid (JS, no simulcast).
    """

    rid: str
    quality: int
    width: int
    height: int
    max_bitrate: int
    max_framerate: float
    scale_resolution_down_by: float

    def to_proto(self, ssrc: int = 0) -> object:
        """``livekit.protocol.models.VideoLayer`` for an AddTrackRequest."""
        from livekit.protocol import models

        return models.VideoLayer(
            quality=self.quality,  # type: ignore[arg-type]
            width=self.width,
            height=self.height,
            bitrate=self.max_bitrate,
            ssrc=ssrc,
            rid=self.rid,
        )


# 16:9 presets (identical in rust-sdks `video` and client-sdk-js `VideoPresets`).
_PRESETS_169 = (
    ("h90", VideoPreset(160, 90, 90_000, 15.0)),
    ("h180", VideoPreset(320, 180, 160_000, 15.0)),
    ("h216", VideoPreset(384, 216, 180_000, 15.0)),
    ("h360", VideoPreset(640, 360, 450_000, 20.0)),
    ("h540", VideoPreset(960, 540, 800_000, 25.0)),
    ("h720", VideoPreset(1280, 720, 1_700_000, 30.0)),
    ("h1080", VideoPreset(1920, 1080, 3_000_000, 30.0)),
    ("h1440", VideoPreset(2560, 1440, 5_000_000, 30.0)),
    ("h2160", VideoPreset(3840, 2160, 8_000_000, 30.0)),
)
# 4:3 presets (rust-sdks `video43`; client-sdk-js `VideoPresets43`).
_PRESETS_43 = (
    ("h120_43", VideoPreset(160, 120, 80_000, 15.0)),
    ("h180_43", VideoPreset(240, 180, 100_000, 15.0)),
    ("h240_43", VideoPreset(320, 240, 150_000, 15.0)),
    ("h360_43", VideoPreset(480, 360, 225_000, 20.0)),
    ("h480_43", VideoPreset(640, 480, 300_000, 20.0)),
    ("h540_43", VideoPreset(720, 540, 450_000, 25.0)),
    ("h720_43", VideoPreset(960, 720, 1_500_000, 30.0)),
    ("h1080_43", VideoPreset(1440, 1080, 2_500_000, 30.0)),
    ("h1440_43", VideoPreset(1920, 1440, 3_500_000, 30.0)),
)

VIDEO_PRESETS: dict[str, VideoPreset] = dict(_PRESETS_169 + _PRESETS_43)
"""livekit's 16:9 / 4:3 presets by name (e.g. "h720", "h540_43")."""

# Default lower simulcast layers (low, medium) for each aspect family.
_SIMULCAST_169 = (VIDEO_PRESETS["h180"], VIDEO_PRESETS["h360"])
_SIMULCAST_43 = (VIDEO_PRESETS["h180_43"], VIDEO_PRESETS["h360_43"])


def _is_169(width: int, height: int) -> bool:
    aspect = width / height if width > height else height / width
    return abs(aspect - 16 / 9) < abs(aspect - 4 / 3)


def _check(width: int, height: int, sdk: str) -> None:
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if sdk not in ("rust", "js"):
        raise ValueError(f"sdk: expected 'rust' or 'js', got {sdk!r}")


def default_video_preset(width: int, height: int, *, sdk: Literal["rust", "js"] = "rust") -> VideoPreset:
    """livekit's encoding (max bitrate, max framerate) for publishing a
    ``width``x``height`` camera track, with the size set to ``width``x``height``."""
    _check(width, height, sdk)
    presets = _PRESETS_169 if _is_169(width, height) else _PRESETS_43
    longer = max(width, height)
    chosen = presets[0][1]
    for _, preset in presets:
        chosen = preset
        if preset.width > longer or (sdk == "js" and preset.width == longer):
            break
    return VideoPreset(width, height, chosen.max_bitrate, chosen.max_framerate)


def plan_video_layers(
    width: int,
    height: int,
    *,
    simulcast: bool = True,
    max_bitrate: int | None = None,
    max_framerate: float | None = None,
    sdk: Literal["rust", "js"] = "rust",
) -> list[VideoLayerPlan]:
    """Encodings livekit's SDKs send for a ``width``x``height`` camera publish,
    lowest quality first (the order of RTP encodings and of
    ``AddTrackRequest.layers``).

    With simulcast: three layers (q, h, f) when the longer side is >= 960,
    two (q, h) from 480, else one. ``max_bitrate``/``max_framerate`` override
    the top layer's defaults (as ``TrackPublishOptions.video_encoding`` does).
    """
    _check(width, height, sdk)
    if max_bitrate is not None and (not isinstance(max_bitrate, int) or max_bitrate <= 0):
        raise ValueError(f"max_bitrate: expected a positive int (bps) or None, got {max_bitrate!r}")
    if max_framerate is not None and (not isinstance(max_framerate, (int, float)) or max_framerate <= 0):
        raise ValueError(f"max_framerate: expected a positive number or None, got {max_framerate!r}")
    default = default_video_preset(width, height, sdk=sdk)
    top = VideoPreset(
        width,
        height,
        default.max_bitrate if max_bitrate is None else max_bitrate,
        default.max_framerate if max_framerate is None else float(max_framerate),
    )
    if not simulcast:
        if sdk == "js":
            return [VideoLayerPlan("", QUALITY_HIGH, width, height, top.max_bitrate, top.max_framerate, 1.0)]
        return _layers(width, height, [top], sdk)

    low, medium = _SIMULCAST_169 if _is_169(width, height) else _SIMULCAST_43
    longer = max(width, height)
    if longer >= 960:
        presets = [low, medium, top]
    elif longer >= 480:
        presets = [medium if sdk == "rust" else low, top]
    else:
        presets = [top]
    return _layers(width, height, presets, sdk)


def _layers(width: int, height: int, presets: list[VideoPreset], sdk: str) -> list[VideoLayerPlan]:
    shorter = min(width, height)
    top_framerate = presets[-1].max_framerate
    plans: list[VideoLayerPlan] = []
    for rid, preset in zip(_RIDS, presets):
        scale = max(1.0, shorter / min(preset.width, preset.height))
        framerate = min(preset.max_framerate, top_framerate) if sdk == "js" else preset.max_framerate
        plans.append(
            VideoLayerPlan(
                rid=rid,
                quality=_QUALITY_BY_RID[rid],
                # Truncating like the SDKs' `as u32` keeps sizes identical to theirs.
                width=int(width / scale),
                height=int(height / scale),
                max_bitrate=preset.max_bitrate,
                max_framerate=framerate,
                scale_resolution_down_by=scale,
            )
        )
    return plans
