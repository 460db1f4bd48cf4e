"""Frames across the control channel, through shared-memory rings; the same code on both sides.

Each stream of frames (a published track in the application, a received track in the
media process) has a :class:`FrameWriter`: it copies a frame into a free slot of its
ring (one copy) and announces it as a ``frame`` message naming ring and slot. The
other side's :class:`FrameLink` wraps the slot as a VideoFrame (no copy) and sends
``release`` when that frame's pixels are no longer referenced. A ring is sized for
the stream's frames and replaced (``ring`` / ``ring_drop`` messages) when a bigger
frame comes; the memory stays bounded by the writer's slot count.

Message shapes (tuples; first element the kind):
``("ring", ring_id, slot_size, slots)`` + the memfd, ``("ring_drop", ring_id)``,
``("release", ring_id, slot)``, and a frame as
``("frame", key, FramePlace, FrameInfo)`` where the place is ``(ring_id, slot, size)``
or ``(None, pixels, size)`` for a frame sent inline (no free slot and the writer
chose not to drop it).
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from kitewire.frames import VideoFrame
from kitewire.media.packet_trailer import FrameMetadata

from .channel import Channel, ChannelClosed
from .frame_ring import FrameRing, slots_for

__all__ = ["PUBLISH_SLOTS", "RECEIVE_SLOTS", "FrameInfo", "FrameLink", "FrameWriter"]

logger = logging.getLogger("kitewire.engine.process")

# Frames in flight per stream. Publishing: the encoder keeps only the newest frame, so
# a few slots cover the one being encoded, the one waiting and the one being written.
PUBLISH_SLOTS = 3
# Receiving: a stream with capacity N holds N frames, and a frame or two wait on the
# application's loop; beyond these a frame goes inline (copied through the socket).
RECEIVE_SLOTS = 8


class FrameInfo(NamedTuple):
    """What travels next to a frame's pixels."""

    width: int
    height: int
    buffer_type: int
    timestamp_us: int
    rotation: int
    # counters of the producer, or other small picklable facts the receiver keeps
    extra: tuple[Any, ...] = ()
    # the frame's sender-side metadata (user timestamp, frame id), both ways
    metadata: FrameMetadata | None = None


class FrameLink:
    """One process's side of every frame ring (its writers' rings and the peer's)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._ring_ids = itertools.count(1)
        self._writers: dict[int, FrameRing] = {}
        self._readers: dict[int, FrameRing] = {}
        self._lock = threading.Lock()

    def writer(self, slots: int) -> FrameWriter:
        """A writer for one stream of frames, with up to ``slots`` frames in flight."""
        return FrameWriter(self, slots)

    def _new_ring(self, slot_size: int, slots: int) -> FrameRing:
        ring = FrameRing.create(next(self._ring_ids), slot_size, slots_for(slot_size, slots))
        with self._lock:
            self._writers[ring.ring_id] = ring
        try:
            self.channel.send(("ring", ring.ring_id, ring.slot_size, ring.slots), [ring.fd])
        except ChannelClosed:
            self._drop_writer(ring.ring_id)
            raise
        return ring

    def _drop_writer(self, ring_id: int) -> None:
        with self._lock:
            ring = self._writers.pop(ring_id, None)
        if ring is not None:
            ring.close()
            self.channel.post(("ring_drop", ring_id))

    # -- messages from the other side ------------------------------------------------

    def handle(self, message: tuple[Any, ...]) -> bool:
        """Handle a ring bookkeeping message; False if ``message`` is something else."""
        kind = message[0]
        if kind == "release":
            with self._lock:
                ring = self._writers.get(message[1])
            if ring is not None:
                ring.release(message[2])
        elif kind == "ring":
            _, ring_id, slot_size, slots = message
            ring = FrameRing.attach(ring_id, self.channel.take_fd(), slot_size, slots)
            with self._lock:
                old = self._readers.pop(ring_id, None)
                self._readers[ring_id] = ring
            if old is not None:
                old.close()
        elif kind == "ring_drop":
            with self._lock:
                dropped = self._readers.pop(message[1], None)
            if dropped is not None:
                dropped.close()
        else:
            return False
        return True

    def read(self, place: tuple[Any, Any, int], info: FrameInfo) -> VideoFrame | None:
        """The VideoFrame a ``frame`` message names (a view of the slot), None if its ring is gone."""
        ring_id, slot, size = place
        if ring_id is None:
            return VideoFrame(info.width, info.height, info.buffer_type, slot)
        with self._lock:
            ring = self._readers.get(ring_id)
        if ring is None:
            return None
        channel = self.channel

        def release() -> None:
            channel.post(("release", ring_id, slot))

        return ring.frame(slot, info.width, info.height, info.buffer_type, size, release)

    def close(self) -> None:
        """Unmap every ring (frames still in use keep their memory until dropped)."""
        with self._lock:
            rings = list(self._writers.values()) + list(self._readers.values())
            self._writers.clear()
            self._readers.clear()
        for ring in rings:
            ring.close()


class FrameWriter:
    """Sends the frames of one stream through a ring of its own (see the module docstring).

    A producer that can write a frame's pixels itself (a decoder copying its picture
    out) takes a slot's memory with :meth:`reserve` first; sending a frame over that
    memory then copies nothing.
    """

    def __init__(self, link: FrameLink, slots: int) -> None:
        self._link = link
        self._slots = slots
        self._ring: FrameRing | None = None
        # reentrant: a dropped reservation's finalizer may run inside a locked section
        # (the cyclic collector runs on allocations)
        self._lock = threading.RLock()
        self._closed = False
        # reserved slots by the address of their memory: (ring, slot, what frees it unsent)
        self._reserved: dict[int, tuple[FrameRing, int, weakref.finalize[Any, Any]]] = {}
        #: frames not sent because every slot was still in use
        self.frames_dropped = 0

    def _current_ring(self, size: int) -> FrameRing:
        ring = self._ring
        if ring is None or ring.slot_size < size:
            if ring is not None:
                self._link._drop_writer(ring.ring_id)
            ring = self._ring = self._link._new_ring(size, self._slots)
        return ring

    def reserve(self, size: int) -> npt.NDArray[np.uint8] | None:
        """A free slot's memory for a frame of ``size`` bytes (any thread), None when every
        slot is in use or the channel is closed. Fill it, wrap it in a VideoFrame and
        :meth:`send` that; a slot never sent goes back when its array is dropped."""
        with self._lock:
            if self._closed:
                return None
            try:
                ring = self._current_ring(size)
            except (ChannelClosed, OSError):
                return None
            slot = ring.acquire()
            if slot is None:
                return None
            memory = ring.slot_array(slot, size)
            address = memory.ctypes.data
            unsent = weakref.finalize(memory, self._unreserve, address, ring, slot)
            self._reserved[address] = (ring, slot, unsent)
            return memory

    def _unreserve(self, address: int, ring: FrameRing, slot: int) -> None:
        with self._lock:
            self._reserved.pop(address, None)
        ring.release(slot)

    def _take_reserved(self, pixels: memoryview) -> tuple[FrameRing, int] | None:
        """The current ring's slot that ``pixels`` already fill, if they are a reservation (lock held)."""
        if not self._reserved:
            return None
        reserved = self._reserved.pop(np.frombuffer(pixels, dtype=np.uint8).ctypes.data, None)
        if reserved is None:
            return None
        ring, slot, unsent = reserved
        unsent.detach()  # from now on the reader hands the slot back
        if ring is self._ring:
            return ring, slot
        ring.release(slot)  # reserved in a ring replaced since: copied into the new one
        return None

    def send(self, key: Any, frame: VideoFrame, info: FrameInfo, *, inline_when_full: bool = False) -> bool:
        """Announce ``frame`` under ``key``; False when it was dropped (no free slot, channel closed)."""
        pixels = frame.data
        size = len(pixels)
        with self._lock:
            if self._closed:
                return False
            try:
                filled = self._take_reserved(pixels)
                if filled is not None:
                    self._link.channel.send(("frame", key, (filled[0].ring_id, filled[1], size), info))
                    return True
                ring = self._current_ring(size)
                slot = ring.acquire()
                if slot is None:
                    if not inline_when_full:
                        self.frames_dropped += 1
                        return False
                    place: tuple[Any, Any, int] = (None, bytes(pixels), size)
                else:
                    ring.write(slot, pixels)
                    place = (ring.ring_id, slot, size)
                self._link.channel.send(("frame", key, place, info))
            except (ChannelClosed, OSError) as exc:
                logger.debug("a frame could not be sent: %s", exc)
                self.frames_dropped += 1
                return False
        return True

    def close(self) -> None:
        """Free the ring (idempotent)."""
        with self._lock:
            self._closed = True
            ring, self._ring = self._ring, None
        if ring is not None:
            self._link._drop_writer(ring.ring_id)
