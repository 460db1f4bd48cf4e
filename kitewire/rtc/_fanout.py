"""Delivery of frames from one producer (a VideoSource, an AudioSource or a remote track's
decoder) to any number of consumers (VideoStreams, AudioStreams, the publish pipeline).

Generic in the frame type: video fanouts carry :class:`VideoFrame`, audio fanouts
:class:`~kitewire.frames.audio_frame.AudioFrame` (with rotation always 0)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from kitewire.media.packet_trailer import FrameMetadata

logger = logging.getLogger("kitewire.rtc")


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, or None outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


FrameT = TypeVar("FrameT")
FrameT_contra = TypeVar("FrameT_contra", contravariant=True)


class FrameSink(Protocol[FrameT_contra]):
    """Something that consumes frames from a :class:`FrameFanout`."""

    def on_frame(
        self, frame: FrameT_contra, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        """Receive one frame (with its metadata, if it carries any); must return quickly (no CPU work)."""

    def on_end(self) -> None:
        """The producer is gone; no more frames will come from this fanout."""


class FrameFanout(Generic[FrameT]):
    """Hands each produced frame to every attached sink.

    The same frame object goes to every sink, so sinks must treat it as
    read-only; that is what lets several streams share one decoder without copies.
    """

    def __init__(self) -> None:
        self._sinks: dict[FrameSink[FrameT], None] = {}
        # frames may be pushed from a capture thread while streams attach on the loop
        self._lock = threading.Lock()
        self._ended = False
        self.frames_pushed = 0
        #: told ``has_sinks`` whenever it flips (the media process's decoder skips copies while False)
        self.sinks_watcher: Callable[[bool], None] | None = None

    @property
    def ended(self) -> bool:
        """True once :meth:`end` ran; later sinks are ended as soon as they attach."""
        return self._ended

    @property
    def has_sinks(self) -> bool:
        """Whether any consumer is attached (producers may skip work when not)."""
        return bool(self._sinks)

    @property
    def sinks_copy(self) -> bool:
        """True when every attached sink copies a frame before ``on_frame`` returns
        (``copies_frames = True``, e.g. the media process's publish pipeline): a producer
        may then hand over a buffer the caller reuses, without a private copy first."""
        with self._lock:
            return bool(self._sinks) and all(getattr(sink, "copies_frames", False) for sink in self._sinks)

    def add(self, sink: FrameSink[FrameT]) -> None:
        """Attach ``sink``; if the producer already ended, tell it right away."""
        with self._lock:
            ended = self._ended
            first = not ended and not self._sinks
            if not ended:
                self._sinks[sink] = None
        if ended:
            sink.on_end()
        elif first:
            self._tell_watcher(True)

    def remove(self, sink: FrameSink[FrameT]) -> None:
        """Detach ``sink`` without ending it; unknown sinks are ignored."""
        with self._lock:
            last = sink in self._sinks and len(self._sinks) == 1
            self._sinks.pop(sink, None)
        if last:
            self._tell_watcher(False)

    def _tell_watcher(self, has_sinks: bool) -> None:
        watcher = self.sinks_watcher
        if watcher is not None:
            try:
                watcher(has_sinks)
            except Exception:
                logger.exception("the fanout's sinks watcher failed")

    def pacing_sinks(self) -> list[FrameSink[FrameT]]:
        """The sinks that play audio out themselves (``paces_audio = True``, the media
        process's publish pipeline): they take captured audio at once, not paced."""
        with self._lock:
            return [sink for sink in self._sinks if getattr(sink, "paces_audio", False)]

    def push(
        self,
        frame: FrameT,
        timestamp_us: int,
        rotation: int,
        metadata: FrameMetadata | None = None,
        *,
        pacing: bool | None = None,
    ) -> None:
        """Deliver one frame to every sink (only those whose ``paces_audio`` equals
        ``pacing`` when given); a failing sink is logged and skipped."""
        with self._lock:
            if self._ended:
                return
            self.frames_pushed += 1
            sinks = list(self._sinks)
        if pacing is not None:
            sinks = [sink for sink in sinks if getattr(sink, "paces_audio", False) == pacing]
        for sink in sinks:
            try:
                sink.on_frame(frame, timestamp_us, rotation, metadata)
            except Exception:
                logger.exception("frame sink %r failed", sink)

    def end(self) -> None:
        """Tell every sink the producer is gone and detach them all (idempotent)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            sinks = list(self._sinks)
            self._sinks.clear()
        for sink in sinks:
            try:
                sink.on_end()
            except Exception:
                logger.exception("frame sink %r failed to end", sink)
