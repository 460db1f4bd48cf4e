"""VideoSource: where an application hands frames to be published."""

from __future__ import annotations

import time
from typing import Any

from kitewire.frames import VideoFrame, VideoRotation
from kitewire.media.packet_trailer import FrameMetadata

from ._fanout import FrameFanout

_ROTATIONS = (0, 1, 2, 3)


def _copy_frame(frame: VideoFrame) -> VideoFrame:
    # the application may reuse its buffer right after capture_frame returns, while the
    # encoder thread and streams still read this frame; a private copy keeps both safe
    return VideoFrame(frame.width, frame.height, frame.type, bytearray(frame.data))


def _frame_metadata(metadata: Any | None) -> FrameMetadata | None:
    """Our FrameMetadata from ``metadata``: ours, livekit's protobuf, or anything with
    its three fields; None when there is nothing in it."""
    if metadata is None:
        return None
    if not isinstance(metadata, FrameMetadata):
        try:
            fields = (metadata.user_timestamp, metadata.frame_id, metadata.user_data)
        except AttributeError:
            raise ValueError(
                "expected metadata to be a FrameMetadata (user_timestamp, frame_id, user_data), "
                f"got {type(metadata).__name__}"
            ) from None
        metadata = FrameMetadata(int(fields[0]), int(fields[1]), bytes(fields[2]))
    return None if metadata.is_empty else metadata


class VideoSource:
    """A producer of video frames for a :class:`LocalVideoTrack`.

    ``capture_frame`` accepts a :class:`VideoFrame` of any buffer type. Frames reach
    the publish pipeline (which encodes them in a worker thread) and any
    :class:`VideoStream` opened on a local track made from this source.
    """

    def __init__(self, width: int, height: int, *, is_screencast: bool = False) -> None:
        for label, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"expected {label} to be a positive int, got {value!r}")
        self._width = width
        self._height = height
        self._is_screencast = bool(is_screencast)
        self._fanout: FrameFanout[VideoFrame] = FrameFanout()
        self._closed = False

    @property
    def width(self) -> int:
        """Width the source was created with (the published track's nominal width)."""
        return self._width

    @property
    def height(self) -> int:
        """Height the source was created with (the published track's nominal height)."""
        return self._height

    @property
    def is_screencast(self) -> bool:
        """Whether the content is a screen capture."""
        return self._is_screencast

    def capture_frame(
        self,
        frame: VideoFrame,
        *,
        timestamp_us: int = 0,
        rotation: int = VideoRotation.VIDEO_ROTATION_0,
        metadata: Any | None = None,
    ) -> None:
        """Hand one frame to everything consuming this source.

        ``timestamp_us`` is the capture time in microseconds; 0 stamps the frame with
        the current wall-clock time. Receivers get it back unchanged, as they get
        ``rotation``. ``metadata`` (a :class:`FrameMetadata`, or livekit's protobuf of
        that name) reaches subscribers' ``VideoFrameEvent.metadata`` for the fields the
        track was published with in ``frame_metadata_features``. The frame is copied,
        so the caller may reuse its buffer.
        """
        if not isinstance(frame, VideoFrame):
            raise ValueError(f"expected a kitewire VideoFrame, got {type(frame).__name__}")
        if isinstance(timestamp_us, bool) or not isinstance(timestamp_us, int) or timestamp_us < 0:
            raise ValueError(f"expected timestamp_us to be a non-negative int, got {timestamp_us!r}")
        if int(rotation) not in _ROTATIONS:
            raise ValueError(f"expected rotation to be a VideoRotation (0..3), got {rotation!r}")
        frame_metadata = _frame_metadata(metadata)
        if self._closed or not self._fanout.has_sinks:
            return
        if timestamp_us == 0:
            timestamp_us = time.time_ns() // 1000
        # one copy at most: a sink that copies into shared memory needs no private copy first
        pushed = frame if self._fanout.sinks_copy else _copy_frame(frame)
        self._fanout.push(pushed, timestamp_us, int(rotation), frame_metadata)

    async def aclose(self) -> None:
        """Stop the source: local streams on it end and later frames are ignored."""
        self._closed = True
        self._fanout.end()
