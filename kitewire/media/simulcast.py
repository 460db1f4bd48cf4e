"""livekit's default video encodings and simulcast layer plan.

Two flavours, chosen with ``sdk=``, because livekit's SDKs disagree in the
details:

* ``"rust"`` (default) follows rust-sdks ``livekit/src/room/options.rs``
  (``compute_video_encodings``, ``compute_appropriate_encoding``,
  ``into_rtp_encodings``, ``video_layers_from_encodings`` and its ``video`` /
  ``video43`` preset tables). This is what the Python ``livekit`` package
  runs, so it is what kitewire's client sends.
* ``"js"`` follows client-sdk-js 2.x ``src/room/participant/publishUtils.ts``
  (``computeVideoEncodings``, ``determineAppropriateEncoding``),
  ``src/room/track/LocalVideoTrack.ts`` (``videoLayersFromEncodings``) and
  the ``VideoPresets`` / ``VideoPresets43`` tables of
  ``src/room/track/options.ts`` (v2.21): what a browser publisher sends.

Where they differ:

* preset tables: the JS 4:3 table and the 15 fps of the small 16:9 presets;
* picking the preset for a size: rust takes the first preset *wider* than the
  longer side (1280x720 gets the 1080p numbers, 3 Mbps), JS the first at
  least as wide (1280x720 gets 1.7 Mbps);
* two-layer simulcast (longer side 480..959): rust puts the *medium* default
  preset under the top layer, JS the *low* one;
* JS caps every layer's framerate at the top layer's, and rounds layer sizes
  up where rust truncates;
* without simulcast rust still names its single encoding rid "q" (so it
  reports quality LOW); JS sends no rid, reports HIGH, and without an explicit
  ``max_bitrate`` puts no cap at all (bitrate 0 in the layer).
"""

from __future__ import annotations

import math
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


# rust-sdks `video` (16:9) and `video43` (4:3) presets.
_RUST_169 = (
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
_RUST_43 = (
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
# client-sdk-js 2.21 `VideoPresets` and `VideoPresets43`.
_JS_169 = (
    ("h90", VideoPreset(160, 90, 90_000, 20.0)),
    ("h180", VideoPreset(320, 180, 160_000, 20.0)),
    ("h216", VideoPreset(384, 216, 180_000, 20.0)),
    ("h360", VideoPreset(640, 360, 450_000, 20.0)),
    ("h540", VideoPreset(960, 540, 800_000, 25.0)),
    ("h720", VideoPreset(1280, 720, 1_700_000, 30.0)),
    ("h1080", VideoPreset(1920, 1080, 3_000_000, 30.0)),
    ("h1440", VideoPreset(2560, 1440, 5_000_000, 30.0)),
    ("h2160", VideoPreset(3840, 2160, 8_000_000, 30.0)),
)
_JS_43 = (
    ("h120_43", VideoPreset(160, 120, 70_000, 20.0)),
    ("h180_43", VideoPreset(240, 180, 125_000, 20.0)),
    ("h240_43", VideoPreset(320, 240, 140_000, 20.0)),
    ("h360_43", VideoPreset(480, 360, 330_000, 20.0)),
    ("h480_43", VideoPreset(640, 480, 500_000, 20.0)),
    ("h540_43", VideoPreset(720, 540, 600_000, 25.0)),
    ("h720_43", VideoPreset(960, 720, 1_300_000, 30.0)),
    ("h1080_43", VideoPreset(1440, 1080, 2_300_000, 30.0)),
    ("h1440_43", VideoPreset(1920, 1440, 3_800_000, 30.0)),
)

VIDEO_PRESETS: dict[str, VideoPreset] = dict(_RUST_169 + _RUST_43)
"""livekit's presets by name (e.g. "h720", "h540_43"), rust-sdks numbers."""

JS_VIDEO_PRESETS: dict[str, VideoPreset] = dict(_JS_169 + _JS_43)
"""The same names with client-sdk-js 2.21 numbers."""


def _tables(
    sdk: str, width: int, height: int
) -> tuple[tuple[tuple[str, VideoPreset], ...], tuple[VideoPreset, VideoPreset]]:
    """(presets for the size's aspect family, default (low, medium) simulcast presets)."""
    wide = _is_169(width, height)
    table = (_RUST_169 if wide else _RUST_43) if sdk == "rust" else _JS_169 if wide else _JS_43
    by_name = dict(table)
    suffix = "" if wide else "_43"
    return table, (by_name["h180" + suffix], by_name["h360" + suffix])


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
    table, _ = _tables(sdk, width, height)
    longer = max(width, height)
    chosen = table[0][1]
    for _, preset in table:
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
    Without simulcast the one layer gets the default preset for the size
    (``default_video_preset``) unless overridden; for ``sdk="js"`` it carries
    no rid and quality HIGH, as client-sdk-js's single encoding does.
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

    _, (low, medium) = _tables(sdk, width, height)
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
        if sdk == "js":
            framerate = min(preset.max_framerate, top_framerate)
            # videoLayersFromEncodings rounds up (Math.ceil).
            layer_width, layer_height = math.ceil(width / scale), math.ceil(height / scale)
        else:
            framerate = preset.max_framerate
            # video_layers_from_encodings truncates (`as u32`).
            layer_width, layer_height = int(width / scale), int(height / scale)
        plans.append(
            VideoLayerPlan(
                rid=rid,
                quality=_QUALITY_BY_RID[rid],
                width=layer_width,
                height=layer_height,
                max_bitrate=preset.max_bitrate,
                max_framerate=framerate,
                scale_resolution_down_by=scale,
            )
        )
    return plans
