"""Video frames: livekit-compatible layouts, enums, conversions, numpy and PyAV bridges."""

from __future__ import annotations

from .enums import (
    EnumTypeWrapper,
    TrackKind,
    TrackSource,
    VideoBufferType,
    VideoCodec,
    VideoQuality,
    VideoRotation,
)
from .layout import PlaneLayout, buffer_size, plane_layouts
from .video_frame import VideoFrame

__all__ = [
    "EnumTypeWrapper",
    "PlaneLayout",
    "TrackKind",
    "TrackSource",
    "VideoBufferType",
    "VideoCodec",
    "VideoFrame",
    "VideoQuality",
    "VideoRotation",
    "buffer_size",
    "plane_layouts",
]
