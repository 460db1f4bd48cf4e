"""Two-band (two-thread) conversions give byte for byte the single-band results."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from frames_helpers import ALL_TYPES, random_frame
from kitewire.frames import VideoBufferType as T
from kitewire.frames import VideoFrame, _bands

# tests marked with the "engine" fixture run with each conversion engine (see conftest.py)


@pytest.fixture
def split_every_frame(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Split every frame of 8 rows or more into two bands, whatever the defaults."""
    monkeypatch.setattr(_bands, "MIN_PIXELS", 0)
    previous = _bands.set_enabled(True)
    try:
        yield
    finally:
        _bands.set_enabled(previous)


def _convert(frame: VideoFrame, target_type: int, flip_y: bool, split: bool) -> bytes:
    previous = _bands.set_enabled(split)
    try:
        return bytes(frame.convert(target_type, flip_y=flip_y).data)
    finally:
        _bands.set_enabled(previous)


# odd heights (last band odd), a split row that is not the middle, odd widths
@pytest.mark.parametrize("width,height", [(33, 17), (40, 9), (64, 10), (7, 8)])
@pytest.mark.usefixtures("engine", "split_every_frame")
def test_two_bands_equal_one_band_for_every_pair_and_flip(width: int, height: int) -> None:
    for source_type in ALL_TYPES:
        frame = random_frame(source_type, width, height, seed=source_type + width)
        for target_type, flip_y in itertools.product(ALL_TYPES, (False, True)):
            whole = _convert(frame, target_type, flip_y, split=False)
            banded = _convert(frame, target_type, flip_y, split=True)
            assert banded == whole, f"{T.Name(source_type)}->{T.Name(target_type)} flip={flip_y}"


@pytest.mark.usefixtures("engine", "split_every_frame")
def test_two_bands_equal_one_band_at_a_large_odd_size() -> None:
    width, height = 641, 479
    for source_type, target_type in [
        (T.RGBA, T.I420),
        (T.ABGR, T.NV12),
        (T.ARGB, T.I420A),
        (T.RGB24, T.I422),
        (T.I420, T.RGBA),
        (T.NV12, T.I420),
        (T.I444, T.I422),
        (T.I010, T.NV12),
    ]:
        frame = random_frame(source_type, width, height, seed=source_type)
        for flip_y in (False, True):
            assert _convert(frame, target_type, flip_y, split=True) == _convert(
                frame, target_type, flip_y, split=False
            ), f"{T.Name(source_type)}->{T.Name(target_type)} flip={flip_y}"


def test_band_rows_split_chroma_with_their_luma_pairs() -> None:
    height = 9
    luma = np.arange(height * 2, dtype=np.uint8).reshape(height, 2)
    chroma = np.arange(5, dtype=np.uint8).reshape(5, 1)
    middle = _bands.split_row(height)
    assert middle % 2 == 0 and 0 < middle < height
    top = _bands.band_rows([luma, chroma], height, 0, middle, mirrored=False)
    bottom = _bands.band_rows([luma, chroma], height, middle, height, mirrored=False)
    assert [len(plane) for plane in top] == [middle, middle // 2]
    assert [len(plane) for plane in bottom] == [height - middle, 5 - middle // 2]
    # mirrored: the top band's rows are the last ones of each plane
    flipped_top = _bands.band_rows([luma, chroma], height, 0, middle, mirrored=True)
    np.testing.assert_array_equal(flipped_top[0], luma[height - middle :])
    np.testing.assert_array_equal(flipped_top[1], chroma[5 - middle // 2 :])


def _numbered_rows(height: int) -> npt.NDArray[np.uint8]:
    """A plane whose every sample holds its row number."""
    return np.repeat(np.arange(height, dtype=np.uint8)[:, None], 4, axis=1)


@pytest.mark.usefixtures("split_every_frame")
def test_an_error_in_the_bottom_band_reaches_the_caller() -> None:
    plane = _numbered_rows(16)
    first_rows: list[int] = []

    def convert(sources: list[npt.NDArray[Any]], targets: list[npt.NDArray[Any]], rows: int) -> bool:
        first_rows.append(int(sources[0][0, 0]))
        if sources[0][0, 0] == 8:  # the bottom band, on whichever thread runs it
            raise RuntimeError("bottom band failed")
        return True

    with pytest.raises(RuntimeError, match="bottom band failed"):
        _bands.convert_in_bands(convert, [plane], [plane.copy()], 4, 16, False, False)
    assert sorted(first_rows) == [0, 8]


@pytest.mark.usefixtures("split_every_frame")
def test_a_declined_band_reports_false_so_the_caller_falls_back() -> None:
    plane = _numbered_rows(16)

    def convert(sources: list[npt.NDArray[Any]], targets: list[npt.NDArray[Any]], rows: int) -> bool:
        return bool(sources[0][0, 0] == 0)  # the bottom band declines

    assert _bands.convert_in_bands(convert, [plane], [plane.copy()], 4, 16, False, False) is False
    # and with flip_y the source bands are counted from the bottom: now the top band declines
    assert _bands.convert_in_bands(convert, [plane], [plane.copy()], 4, 16, True, False) is False


@pytest.mark.usefixtures("engine", "split_every_frame")
def test_concurrent_callers_share_the_worker_and_get_right_results() -> None:
    frames = [random_frame(T.RGBA, 96, 64, seed=seed) for seed in range(6)]
    targets = [T.I420, T.NV12, T.I422, T.BGRA]
    jobs = [(frame, target) for frame in frames for target in targets]
    expected = [_convert(frame, target, False, split=False) for frame, target in jobs]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: bytes(job[0].convert(job[1]).data), jobs * 3))
    assert results == expected * 3


@pytest.mark.usefixtures("split_every_frame")
def test_one_shared_worker_thread_serves_every_split() -> None:
    import threading

    frame = random_frame(T.RGBA, 64, 32, seed=1)
    for target_type in (T.I420, T.I444, T.NV12, T.BGRA) * 5:
        frame.convert(target_type)
    workers = [thread for thread in threading.enumerate() if thread.name == "kitewire-frames-band"]
    assert len(workers) == 1 and workers[0].daemon


@pytest.mark.parametrize("width,height", [(641, 479), (66, 130)])
def test_cached_band_pipelines_equal_whole_frame_calls(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    # RGB -> NV12 / I420A and YUV -> byte-reversed RGB go band by band (64 rows)
    # only from 720p / 640x360; force both ways here
    from kitewire.frames import _libyuv

    if not _libyuv.available():
        pytest.skip("libyuv shared library (Debian package libyuv0) is not installed")
    monkeypatch.setattr(_libyuv, "_enabled", True)
    for source_type in (T.RGBA, T.BGRA, T.ABGR, T.ARGB, T.RGB24):
        frame = random_frame(source_type, width, height, seed=source_type)
        for target_type, flip_y in itertools.product((T.NV12, T.I420A, T.I420, T.I422), (False, True)):
            _assert_bands_equal_whole(monkeypatch, frame, target_type, flip_y)
    for source_type in (T.I420, T.I420A, T.I422, T.I444, T.I010, T.NV12):
        frame = random_frame(source_type, width, height, seed=source_type)
        for target_type, flip_y in itertools.product((T.ABGR, T.ARGB, T.RGBA), (False, True)):
            _assert_bands_equal_whole(monkeypatch, frame, target_type, flip_y)


def _assert_bands_equal_whole(
    monkeypatch: pytest.MonkeyPatch, frame: VideoFrame, target_type: int, flip_y: bool
) -> None:
    from kitewire.frames import _libyuv

    results = []
    for threshold in (10**9, 0):
        monkeypatch.setattr(_libyuv, "_BANDS_FROM_PIXELS", threshold)
        monkeypatch.setattr(_libyuv, "_REVERSAL_BANDS_FROM_PIXELS", threshold)
        results.append(bytes(frame.convert(target_type, flip_y=flip_y).data))
    assert results[0] == results[1], f"{T.Name(frame.type)}->{T.Name(target_type)} flip={flip_y}"


def test_cached_band_pipelines_are_safe_in_parallel_threads() -> None:
    # 1280x720 takes the band-by-band libyuv paths (each call has its own temporaries)
    pairs = [(T.ABGR, T.NV12), (T.RGBA, T.I420A), (T.NV12, T.ABGR), (T.RGB24, T.ARGB), (T.RGBA, T.I422)]
    frames = {source: random_frame(source, 1280, 720, seed=source) for source, _ in pairs}
    jobs = [(frames[source], target, flip_y) for source, target in pairs for flip_y in (False, True)]
    expected = [bytes(frame.convert(target, flip_y=flip_y).data) for frame, target, flip_y in jobs]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: bytes(job[0].convert(job[1], flip_y=job[2]).data), jobs * 3))
    assert results == expected * 3
