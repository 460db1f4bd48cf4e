"""Run a large conversion as two horizontal bands on two threads.

libyuv (through ctypes), OpenCV and numpy release the GIL while they work, so
the top and bottom halves of a frame can convert at the same time: the calling
thread does the top band while one shared worker thread does the bottom one.
Small frames are not split (handing work to another thread costs tens of
microseconds, more than it saves below the threshold); neither is a frame
converted while the worker is busy with another caller's band, so concurrent
callers never queue behind each other.

Bands split on an even luma row, so every 4:2:0 chroma row belongs to exactly
one band and each band's result is byte for byte what the whole-frame call
writes into those rows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import numpy.typing as npt

AnyArray = npt.NDArray[Any]

# A band converter: (source planes, target planes, rows) -> True when it converted.
BandConverter = Callable[[list[AnyArray], list[AnyArray], int], bool]


def _minimum_pixels() -> int:
    text = os.environ.get("KITEWIRE_BAND_MIN_PIXELS", "")
    return int(text) if text.isdigit() else 640 * 360


# Frames with fewer pixels convert in one band. Measured with ``kitewire bench
# convert --size ...`` on 2 cores: at 640x360 two bands already gain 20-30 % on
# RGB -> I420 and copies; at 320x240 the hand-over eats the gain.
# KITEWIRE_BAND_MIN_PIXELS overrides it (0 splits everything, a huge value never).
MIN_PIXELS: int = _minimum_pixels()
_MIN_ROWS: Final = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# held while the worker thread runs a band; callers that find it taken convert in one band
_worker_busy = threading.Lock()
_enabled = (os.cpu_count() or 1) > 1


def enabled() -> bool:
    """Whether large conversions are split over two threads."""
    return _enabled


def set_enabled(flag: bool) -> bool:
    """Switch band splitting on or off (tests and benchmarks compare both); returns the old state."""
    global _enabled
    previous = _enabled
    _enabled = bool(flag)
    return previous


def _worker() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kitewire-frames-band")
        return _pool


def band_rows(
    planes: list[AnyArray], height: int, first: int, end: int, mirrored: bool
) -> list[AnyArray]:
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
    if not _worker_busy.acquire(blocking=False):
        return convert(sources, targets, height)
    try:
        middle = split_row(height)
        mirror_sources = flip_y and not mirror_targets
        mirror_targets = flip_y and mirror_targets

        def band(first: int, end: int) -> bool:
            return convert(
                band_rows(sources, height, first, end, mirror_sources),
                band_rows(targets, height, first, end, mirror_targets),
                end - first,
            )

        bottom: Future[bool] = _worker().submit(band, middle, height)
        try:
            top_done = band(0, middle)
        finally:
            bottom_done = bottom.result()
        return top_done and bottom_done
    finally:
        _worker_busy.release()
