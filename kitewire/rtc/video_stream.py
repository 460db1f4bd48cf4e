"""VideoStream: an async iterator of decoded (or captured) frames from a track."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from kitewire.frames import TrackKind, VideoBufferType, VideoFrame
from kitewire.media.packet_trailer import FrameMetadata

from ._track_stream import TrackStream
from .participant import Participant
from .track import Track

_BUFFER_TYPE_NUMBERS = frozenset(int(value) for _, value in VideoBufferType.items())


@dataclass
class VideoFrameEvent:
    """One frame out of a :class:`VideoStream`."""

    frame: VideoFrame
    timestamp_us: int
    """The sender's capture time in microseconds, as given to ``capture_frame``."""
    rotation: int
    """The sender's ``VideoRotation``."""
    metadata: FrameMetadata | None = None
    """The sender's per-frame metadata (user timestamp, frame id, user data) when the
    track was published with ``frame_metadata_features`` and the frame carried some."""


class VideoStream(TrackStream[VideoFrameEvent]):
    """Frames of a video track as :class:`VideoFrameEvent`, via ``async for``.

    ``capacity`` > 0 keeps only the newest ``capacity`` frames, so a slow consumer
    always sees fresh frames and memory stays bounded; 0 keeps every frame.
    ``format`` converts each yielded frame to that ``VideoBufferType`` (in a worker
    thread); None yields frames as decoded (I420) or, on a local track, as captured.

    Iteration ends after :meth:`aclose`, when the track is unsubscribed or
    unpublished, and when the room disconnects. Several streams on one remote track
    share its single decoder.
    """

    def __init__(
        self,
        track: Track,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        format: int | None = None,
        **kwargs: Any,
    ) -> None:
        if format is not None and (isinstance(format, bool) or int(format) not in _BUFFER_TYPE_NUMBERS):
            raise ValueError(
                f"expected format to be None or a VideoBufferType {sorted(_BUFFER_TYPE_NUMBERS)}, got {format!r}"
            )
        super().__init__(track, loop, capacity, kwargs)
        self._format = None if format is None else int(format)
        self._start()

    @classmethod
    def from_participant(
        cls,
        *,
        participant: Participant,
        track_source: int,
        loop: asyncio.AbstractEventLoop | None = None,
        format: int | None = None,
        capacity: int = 0,
    ) -> VideoStream:
        """A stream that follows ``participant``'s track of ``track_source``.

        It switches to the new track when the participant unpublishes and publishes
        again, and ends when the participant leaves or the room disconnects.
        """
        return VideoStream(
            track=None,  # type: ignore[arg-type]
            loop=loop,
            capacity=capacity,
            format=format,
            participant=participant,
            track_source=track_source,
        )

    @classmethod
    def from_track(
        cls,
        *,
        track: Track,
        loop: asyncio.AbstractEventLoop | None = None,
        format: int | None = None,
        capacity: int = 0,
    ) -> VideoStream:
        """A stream of ``track``'s frames."""
        return VideoStream(track=track, loop=loop, capacity=capacity, format=format)

    def _on_track_frame(
        self, frame: VideoFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        self._deliver(VideoFrameEvent(frame, timestamp_us, rotation, metadata))

    def _accepts(self, track: Track) -> bool:
        return int(track.kind) == int(TrackKind.KIND_VIDEO)

    async def _prepare(self, event: VideoFrameEvent) -> VideoFrameEvent:
        if self._format is not None and int(event.frame.type) != self._format:
            converted = await self._loop.run_in_executor(None, event.frame.convert, self._format)
            return VideoFrameEvent(converted, event.timestamp_us, event.rotation, event.metadata)
        return event

    def __repr__(self) -> str:
        return f"rtc.VideoStream(capacity={self._capacity}, format={self._format}, closed={self._closed})"
