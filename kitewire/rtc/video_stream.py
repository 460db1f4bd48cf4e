"""VideoStream: an async iterator of decoded (or captured) frames from a track."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kitewire.frames import VideoBufferType, VideoFrame
from kitewire.media.packet_trailer import FrameMetadata
from kitewire.utils import RingQueue

from .participant import Participant
from .track import Track

_BUFFER_TYPE_NUMBERS = frozenset(int(value) for _, value in VideoBufferType.items())
_TRACK_SOURCE_NUMBERS = frozenset(range(5))


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


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _TrackSink:
    """Attaches a stream to one track's frame fanout.

    A sink object per attachment (rather than the stream itself) lets a stream that
    follows a participant tell a stale track's end apart from its current one's.
    """

    def __init__(self, stream: VideoStream, track: Track, ends_stream: bool) -> None:
        # weak: a stream dropped without aclose() must not keep collecting frames
        self._stream = weakref.ref(stream)
        self.track = track
        self._ends_stream = ends_stream

    def on_frame(
        self, frame: VideoFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        stream = self._stream()
        if stream is None:
            self.track._fanout.remove(self)
            return
        stream._deliver(VideoFrameEvent(frame, timestamp_us, rotation, metadata))

    def on_end(self) -> None:
        stream = self._stream()
        if stream is not None:
            stream._track_ended(self, self._ends_stream)


class VideoStream:
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
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"expected capacity to be an int >= 0, got {capacity!r}")
        if format is not None and (isinstance(format, bool) or int(format) not in _BUFFER_TYPE_NUMBERS):
            raise ValueError(
                f"expected format to be None or a VideoBufferType {sorted(_BUFFER_TYPE_NUMBERS)}, got {format!r}"
            )
        self._loop = loop or _running_loop() or asyncio.get_event_loop()
        self._capacity = capacity
        self._format = None if format is None else int(format)
        self._queue: RingQueue[VideoFrameEvent | None] = RingQueue(capacity)
        self._sink: _TrackSink | None = None
        self._closed = False
        self._finished = False
        self._participant: Participant | None = None
        participant = kwargs.get("participant")
        if participant is not None:
            if not isinstance(participant, Participant):
                raise ValueError(f"expected participant to be a Participant, got {type(participant).__name__}")
            track_source = kwargs.get("track_source")
            if (
                isinstance(track_source, bool)
                or not isinstance(track_source, int)
                or track_source not in _TRACK_SOURCE_NUMBERS
            ):
                raise ValueError(f"expected track_source to be a TrackSource (0..4), got {track_source!r}")
            self._participant = participant
            participant._add_follower(self, int(track_source))
        else:
            if not isinstance(track, Track):
                raise ValueError(f"expected track to be a Track, got {type(track).__name__}")
            self._attach(track, ends_stream=True)

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

    # -- producer side ----------------------------------------------------------

    def _attach(self, track: Track, *, ends_stream: bool) -> None:
        if self._sink is not None:
            if self._sink.track is track:
                return
            self._sink.track._fanout.remove(self._sink)
        self._sink = _TrackSink(self, track, ends_stream)
        track._fanout.add(self._sink)

    def _detach(self) -> None:
        if self._sink is not None:
            self._sink.track._fanout.remove(self._sink)
            self._sink = None

    def _deliver(self, event: VideoFrameEvent) -> None:
        if self._closed:
            return
        if _running_loop() is self._loop:
            self._queue.put(event)
        else:
            # frames may be captured on another thread; the queue belongs to our loop
            self._loop.call_soon_threadsafe(self._put_if_open, event)

    def _put_if_open(self, event: VideoFrameEvent | None) -> None:
        if not self._closed:
            self._queue.put(event)

    def _finish_from_producer(self) -> None:
        # the producer is gone: consumers drain what is queued, then iteration ends
        if self._closed:
            return
        self._closed = True
        if _running_loop() is self._loop:
            self._queue.put(None)
        else:
            self._loop.call_soon_threadsafe(self._queue.put, None)

    def _track_ended(self, sink: _TrackSink, ends_stream: bool) -> None:
        if sink is not self._sink:
            return
        self._sink = None
        if ends_stream:
            self._finish_from_producer()

    # followers (from_participant)

    def _follow_attach(self, track: Track) -> None:
        if not self._closed:
            self._attach(track, ends_stream=False)

    def _follow_detach(self, track: Track) -> None:
        if self._sink is not None and self._sink.track is track:
            self._detach()

    def _follow_end(self) -> None:
        self._detach()
        self._participant = None
        self._finish_from_producer()

    # -- consumer side ----------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the stream; iteration ends at once. Safe to call any number of times."""
        self._detach()
        if self._participant is not None:
            self._participant._remove_follower(self)
            self._participant = None
        self._finished = True
        if not self._closed:
            self._closed = True
        # wakes a consumer blocked in __anext__
        self._queue.put(None)

    def __aiter__(self) -> AsyncIterator[VideoFrameEvent]:
        return self

    async def __anext__(self) -> VideoFrameEvent:
        if self._finished:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None or self._finished:
            self._finished = True
            # pass the end on to any other task iterating the same stream
            self._queue.put(None)
            raise StopAsyncIteration
        if self._format is not None and int(event.frame.type) != self._format:
            converted = await self._loop.run_in_executor(None, event.frame.convert, self._format)
            if self._finished:
                raise StopAsyncIteration
            event = VideoFrameEvent(converted, event.timestamp_us, event.rotation, event.metadata)
        return event

    def __repr__(self) -> str:
        return f"rtc.VideoStream(capacity={self._capacity}, format={self._format}, closed={self._closed})"
