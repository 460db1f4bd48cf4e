"""Run a large conversion as two horizontal bands on two threads (opt-in).

libyuv (through ctypes), OpenCV and numpy release the GIL while they work, so
the top and bottom halves of a frame can convert at the same time: the calling
thread does the top band while one shared worker thread (started on first
use, kept for the life of the process) does the bottom one.
Small frames are not split: handing work to another thread costs tens of
microseconds, more than it saves below the threshold. Callers never wait for
each other or for a descheduled worker: a caller whose bottom band the worker
has not started by the time its own top band is done runs it itself.

Bands split on an even luma row, so every 4:2:0 chroma row belongs to exactly
one band and each band's result is byte for byte what the whole-frame call
writes into those rows.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Final

import numpy.typing as npt

AnyArray = npt.NDArray[Any]

# A band converter: (source planes, target planes, rows) -> True when it converted.
BandConverter = Callable[[list[AnyArray], list[AnyArray], int], bool]


def _minimum_pixels() -> int:
    text = os.environ.get("KITEWIRE_BAND_MIN_PIXELS", "")
    return int(text) if text.isdigit() else 1_000_000


# Frames with fewer pixels convert in one band. Measured on the 2-core machine
# (RGBA -> I420, I420 -> RGBA, I420 -> I420, RGBA -> I422 at 320x240 up to
# 1920x1080, one band against two): up to 1280x720 two bands were always
# slower (the hand-over and the GIL round trips cost 20-90 us); at 1920x1080
# they won 10-30 % only while the second core was idle.
# KITEWIRE_BAND_MIN_PIXELS overrides it (0 splits every frame of 8 rows or more).
MIN_PIXELS: int = _minimum_pixels()
_MIN_ROWS: Final = 8


class _BandJob:
    """A bottom band offered to the worker thread; whichever thread claims it first runs it."""

    __slots__ = ("claim", "done", "error", "result", "run")

    def __init__(self, run: Callable[[], bool]) -> None:
        self.run = run
        self.claim = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()
        self.result = False
        self.error: BaseException | None = None


def _serve(jobs: queue.SimpleQueue[_BandJob]) -> None:
    """The worker thread: run each offered band nobody has claimed yet."""
    while True:
        job = jobs.get()
        if not job.claim.acquire(blocking=False):
            continue  # the caller got there first and ran the band itself
        try:
            job.result = job.run()
        except BaseException as error:  # handed back to the caller
            job.error = error
        finally:
            job.done.release()


_jobs: queue.SimpleQueue[_BandJob] | None = None
_jobs_lock = threading.Lock()
# Off unless KITEWIRE_BANDS=1: on the shared 2-core development machine two
# bands gained 25-30 % on heavy 1080p pairs when the second core happened to
# be idle and lost as much when it was busy, with no gain over a whole
# `kitewire bench convert` run (median ratio 0.99; see BENCHMARKS.md).
_enabled = os.environ.get("KITEWIRE_BANDS", "0") == "1" and (os.cpu_count() or 1) > 1


def _reset_after_fork() -> None:
    # the worker thread does not exist in a forked child: start a new one when needed
    global _jobs, _jobs_lock
    _jobs, _jobs_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _job_queue() -> queue.SimpleQueue[_BandJob]:
    """The worker's job queue, starting the worker thread on first use."""
    global _jobs
    with _jobs_lock:
        if _jobs is None:
            _jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(_jobs,), name="kitewire-frames-band", daemon=True).start()
        return _jobs


def enabled() -> bool:
    """Whether large conversions are split over two threads."""
    return _enabled


def set_enabled(flag: bool) -> bool:
    """Switch band splitting on or off (tests and benchmarks compare both); returns the old state."""
    global _enabled
    previous = _enabled
    _enabled = bool(flag)
    return previous


def band_rows(planes: list[AnyArray], height: int, first: int, end: int, mirrored: bool) -> list[AnyArray]:
    """Views of the rows of ``planes`` that luma rows [first, end) cover.

    A plane with fewer rows than ``height`` is vertically subsampled by 2
    (``first`` must then be even). ``mirrored`` takes the same rows counted
    from the bottom, for the side a flipping conversion reads or writes
    upside down.
    """
    views = []
    for plane in planes:
        factor = 1 if plane.shape[0] == height else 2
        start, stop = first // factor, -(-end // factor)
        if mirrored:
            start, stop = plane.shape[0] - stop, plane.shape[0] - start
        views.append(plane[start:stop])
    return views


def split_row(height: int) -> int:
    """The even row nearest the middle: the first row of the bottom band."""
    return (height // 4) * 2


def convert_in_bands(
    convert: BandConverter,
    sources: list[AnyArray],
    targets: list[AnyArray],
    width: int,
    height: int,
    flip_y: bool,
    mirror_targets: bool,
) -> bool:
    """Run ``convert`` over the whole frame, or over two bands at once when that pays.

    With ``flip_y`` the band of the target that rows [first, end) fill comes
    from the source rows counted from the bottom (or, with ``mirror_targets``,
    the other way round: the converter writes upside down). Returns False when
    ``convert`` declined any band; the caller then converts another way and
    overwrites everything.
    """
    if not _enabled or width * height < MIN_PIXELS or height < _MIN_ROWS:
        return convert(sources, targets, height)
    middle = split_row(height)
    mirror_sources = flip_y and not mirror_targets
    mirror_targets = flip_y and mirror_targets

    def band(first: int, end: int) -> Callable[[], bool]:
        band_sources = band_rows(sources, height, first, end, mirror_sources)
        band_targets = band_rows(targets, height, first, end, mirror_targets)
        return lambda: convert(band_sources, band_targets, end - first)

    bottom = _BandJob(band(middle, height))
    _job_queue().put(bottom)
    top_done = False
    try:
        top_done = band(0, middle)()
    finally:
        # if the worker has not started the bottom band yet (busy with another
        # caller's band, or not scheduled on a loaded machine), run it here
        # rather than wait: a split never takes much longer than no split
        if bottom.claim.acquire(blocking=False):
            bottom_done = top_done and bottom.run()
        else:
            bottom.done.acquire()
            if bottom.error is not None:
                raise bottom.error
            bottom_done = bottom.result
    return top_done and bottom_done
