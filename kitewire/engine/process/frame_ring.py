"""Shared-memory frame slots between the application and its media process.

A :class:`FrameRing` is one memfd holding ``slots`` equal slots of ``slot_size`` bytes,
mapped in both processes. The writing side (the application for captured frames, the
media process for decoded ones) takes a free slot, copies one frame's pixels into it
and names the slot in a small message; the reading side wraps the slot in a
:class:`~kitewire.frames.VideoFrame` whose buffer *is* the shared memory (no copy:
``to_ndarray()`` is a view of it) and hands the slot back once the last reference to
that frame's pixels is gone (``weakref.finalize`` on the numpy owner of the slot).

A memfd has no name: it cannot outlive the processes that map it, whatever kills
them, so nothing is left in /dev/shm. The memory is bounded by ``slots`` x
``slot_size``; a writer with no free slot drops or falls back (its caller decides).
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt

from kitewire.frames import VideoFrame

__all__ = ["FrameRing", "slots_for"]

# a ring never maps more than this, whatever the frame size asks for
MAX_RING_BYTES: Final = 256 * 1024 * 1024


def slots_for(frame_bytes: int, wanted: int) -> int:
    """How many slots of ``frame_bytes`` a ring gets: ``wanted``, fewer for huge frames, at least 1."""
    if frame_bytes <= 0:
        raise ValueError(f"expected a positive frame size in bytes, got {frame_bytes}")
    return max(1, min(wanted, MAX_RING_BYTES // frame_bytes))


class FrameRing:
    """``slots`` slots of ``slot_size`` bytes in one memfd (see the module docstring).

    Create with :meth:`create` on the writing side and :meth:`attach` on the reading
    side (with the descriptor passed over the control socket). ``acquire``/``release``
    are the writer's bookkeeping and safe from any thread.
    """

    def __init__(self, ring_id: int, fd: int, slot_size: int, slots: int) -> None:
        if slot_size <= 0 or slots <= 0 or slot_size * slots > MAX_RING_BYTES:
            raise ValueError(
                f"expected 1..{MAX_RING_BYTES} bytes of frame slots, got {slots} slots of {slot_size} bytes"
            )
        self.ring_id = ring_id
        self.slot_size = slot_size
        self.slots = slots
        self._fd = fd
        self._map = mmap.mmap(fd, slot_size * slots)
        self._lock = threading.Lock()
        self._free = list(range(slots - 1, -1, -1))
        self.closed = False

    @classmethod
    def create(cls, ring_id: int, slot_size: int, slots: int) -> FrameRing:
        """A new ring backed by a fresh memfd (the writer's side)."""
        fd = os.memfd_create(f"kitewire-frames-{ring_id}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, slot_size * slots)
            return cls(ring_id, fd, slot_size, slots)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def attach(cls, ring_id: int, fd: int, slot_size: int, slots: int) -> FrameRing:
        """Map a ring another process created; takes ownership of ``fd``."""
        try:
            if os.fstat(fd).st_size < slot_size * slots:
                raise ValueError(f"expected a frame ring of {slot_size * slots} bytes, got a smaller memfd")
            return cls(ring_id, fd, slot_size, slots)
        except BaseException:
            os.close(fd)
            raise

    @property
    def fd(self) -> int:
        """The memfd, to pass to the other process."""
        return self._fd

    @property
    def free_slots(self) -> int:
        """Slots not handed out (writer side)."""
        with self._lock:
            return len(self._free)

    # -- writer ------------------------------------------------------------------

    def acquire(self) -> int | None:
        """A free slot, or None when every slot is still in use on the other side."""
        with self._lock:
            return self._free.pop() if self._free and not self.closed else None

    def slot_array(self, slot: int, size: int) -> npt.NDArray[np.uint8]:
        """The first ``size`` bytes of ``slot``, writable (the writer fills a slot in place)."""
        if not 0 <= slot < self.slots or not 0 < size <= self.slot_size:
            raise ValueError(f"expected slot 0..{self.slots - 1} of <= {self.slot_size} bytes, got {slot}/{size}")
        return np.frombuffer(self._map, dtype=np.uint8, count=size, offset=slot * self.slot_size)

    def release(self, slot: int) -> None:
        """The reader is done with ``slot`` (ignored for a slot not handed out)."""
        if not 0 <= slot < self.slots:
            raise ValueError(f"expected a slot in 0..{self.slots - 1}, got {slot}")
        with self._lock:
            if slot not in self._free:
                self._free.append(slot)

    def write(self, slot: int, data: object) -> int:
        """Copy ``data`` (a contiguous buffer of at most ``slot_size`` bytes) into ``slot``;
        returns its length."""
        source = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)  # type: ignore[arg-type]
        if source.size > self.slot_size:
            raise ValueError(f"expected at most {self.slot_size} bytes for a frame slot, got {source.size}")
        target = np.frombuffer(self._map, dtype=np.uint8, count=source.size, offset=slot * self.slot_size)
        # numpy's copy runs without the GIL for a plain byte copy
        np.copyto(target, source)
        return int(source.size)

    # -- reader ------------------------------------------------------------------

    def frame(
        self, slot: int, width: int, height: int, buffer_type: int, size: int, on_release: Callable[[], None]
    ) -> VideoFrame:
        """A VideoFrame over ``slot`` (no copy); ``on_release`` runs once nothing uses its pixels."""
        if not 0 <= slot < self.slots or not 0 < size <= self.slot_size:
            raise ValueError(f"expected slot 0..{self.slots - 1} of <= {self.slot_size} bytes, got {slot}/{size}")
        owner = np.frombuffer(self._map, dtype=np.uint8, count=size, offset=slot * self.slot_size)
        frame = VideoFrame(width, height, buffer_type, owner)
        # views of ``owner`` (the frame's buffer, to_ndarray() results) keep it alive
        weakref.finalize(owner, on_release)
        return frame

    def close(self) -> None:
        """Stop handing out slots and unmap once no frame uses the memory any more."""
        with self._lock:
            self.closed = True
            self._free.clear()
        try:
            self._map.close()
        except BufferError:
            pass  # frames still point into it: the mapping goes when they do
        try:
            os.close(self._fd)
        except OSError:
            pass
