"""What VideoStream and AudioStream share: attaching to a track's frame fanout, following a
participant's track of one source, a bounded queue, and ending on unpublish, unsubscribe,
disconnect or aclose (the contract in VIDEOSTREAM_CONTRACT)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Generic, TypeVar

from kitewire.media.packet_trailer import FrameMetadata
from kitewire.utils import RingQueue

from ._fanout import running_loop
from .participant import Participant
from .track import Track

EventT = TypeVar("EventT")

_TRACK_SOURCE_NUMBERS = frozenset(range(5))


class _TrackSink:
    """Attaches a stream to one track's frame fanout.

    A sink object per attachment (rather than the stream itself) lets a stream that
    follows a participant tell a stale track's end apart from its current one's.
    """

    def __init__(self, stream: TrackStream[Any], track: Track, ends_stream: bool) -> None:
        # weak: a stream dropped without aclose() must not keep collecting frames
        self._stream = weakref.ref(stream)
        self.track = track
        self._ends_stream = ends_stream

    def on_frame(self, frame: Any, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None) -> None:
        stream = self._stream()
        if stream is None:
            self.track._fanout.remove(self)
            return
        stream._on_track_frame(frame, timestamp_us, rotation, metadata)

    def on_end(self) -> None:
        stream = self._stream()
        if stream is not None:
            stream._track_ended(self, self._ends_stream)


class TrackStream(Generic[EventT]):
    """An async iterator of ``EventT`` made from the frames of a track (or of whichever
    track a participant has for one source). Subclasses turn frames into events
    (:meth:`_on_track_frame`, calling :meth:`_deliver`) and may transform events as they
    are taken (:meth:`_prepare`)."""

    def __init__(self, track: Track | None, loop: asyncio.AbstractEventLoop | None, capacity: int, kwargs: Any) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"expected capacity to be an int >= 0, got {capacity!r}")
        self._loop = loop or running_loop() or asyncio.get_event_loop()
        self._capacity = capacity
        self._queue: RingQueue[EventT | None] = RingQueue(capacity)
        self._sink: _TrackSink | None = None
        self._closed = False
        self._finished = False
        self._participant: Participant | None = None
        self._pending_track: Track | None = None
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
            self._follow_source = int(track_source)
        else:
            if not isinstance(track, Track):
                raise ValueError(f"expected track to be a Track, got {type(track).__name__}")
            self._pending_track = track

    def _start(self) -> None:
        """Attach to the track or start following the participant (after the subclass set itself up)."""
        if self._participant is not None:
            self._participant._add_follower(self, self._follow_source)
        elif self._pending_track is not None:
            self._attach(self._pending_track, ends_stream=True)
            self._pending_track = None

    # -- producer side ----------------------------------------------------------

    def _on_track_frame(
        self, frame: Any, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        raise NotImplementedError

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

    def _deliver(self, event: EventT) -> None:
        if self._closed:
            return
        if running_loop() is self._loop:
            self._queue.put(event)
        else:
            # frames come from capture threads and from the media process's reader thread:
            # queued at once, so a consumer busy in its own code (holding the GIL, its loop
            # not running) takes the newest frame when it comes back, not one that waited
            self._queue.put_from_thread(event, self._loop)

    def _finish_from_producer(self) -> None:
        # the producer is gone: consumers drain what is queued, then iteration ends
        if self._closed:
            return
        self._closed = True
        if running_loop() is self._loop:
            self._queue.put(None)
        else:
            self._queue.put_from_thread(None, self._loop)

    def _track_ended(self, sink: _TrackSink, ends_stream: bool) -> None:
        if sink is not self._sink:
            return
        self._sink = None
        if ends_stream:
            self._finish_from_producer()

    # followers (from_participant)

    def _follow_attach(self, track: Track) -> None:
        if not self._closed and self._accepts(track):
            self._attach(track, ends_stream=False)

    def _accepts(self, track: Track) -> bool:
        """Whether a participant's track of the followed source is one this stream reads."""
        return True

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

    def __aiter__(self) -> TrackStream[EventT]:
        return self

    async def _prepare(self, event: EventT) -> EventT:
        """The event to yield for a queued one (VideoStream converts formats here)."""
        return event

    async def __anext__(self) -> EventT:
        if self._finished:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None or self._finished:
            self._finished = True
            # pass the end on to any other task iterating the same stream
            self._queue.put(None)
            raise StopAsyncIteration
        prepared = await self._prepare(event)
        if self._finished:
            raise StopAsyncIteration
        return prepared
