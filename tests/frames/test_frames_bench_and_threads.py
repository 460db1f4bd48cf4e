"""The bench command runs end to end; conversions are safe and correct in worker threads."""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from frames_helpers import smooth_rgba
from kitewire import bench
from kitewire.frames import VideoBufferType as T
from kitewire.frames import VideoFrame


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_bench_convert_prints_a_row_per_pair_with_livekit_beside(capsys: pytest.CaptureFixture[str]) -> None:
    status = bench.run(
        _parse("convert", "--quick", "--size", "64x48", "--repeats", "1", "--pairs", "RGBA-I420,I420-NV12,ABGR-RGBA")
    )
    output = capsys.readouterr().out
    assert status == 0
    rows = [line for line in output.splitlines() if line.startswith("| ") and "->" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["RGBA -> I420", "I420 -> NV12", "ABGR -> RGBA"]
    # livekit is timed on the pair it supports and never on ABGR sources (they abort it)
    assert rows[0].split("|")[3].strip() != "-"
    assert rows[2].split("|")[3].strip() == "-"
    assert "pairs timed: 3" in output


def test_bench_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.run(_parse("convert", "--size", "big")) == 2
    assert "--size must look like 1920x1080" in capsys.readouterr().err
    assert bench.run(_parse("convert", "--pairs", "RGBA-PNG")) == 2
    assert "--pairs entries must look like RGBA-I420" in capsys.readouterr().err
    assert bench.run(_parse("convert", "--repeats", "0")) == 2
    assert "--repeats must be at least 1, got 0" in capsys.readouterr().err


def test_conversions_in_parallel_threads_match_sequential_results() -> None:
    rgba = smooth_rgba(320, 240, seed=9)
    frames = [VideoFrame.from_ndarray(np.roll(rgba, shift, axis=1), T.RGBA) for shift in range(8)]
    targets = [T.I420, T.NV12, T.BGRA, T.I444]
    expected = [bytes(frame.convert(target).data) for frame in frames for target in targets]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda job: bytes(job[0].convert(job[1]).data), [(f, t) for f in frames for t in targets])
        )
    assert results == expected


async def test_convert_from_the_event_loop_via_executor() -> None:
    frame = VideoFrame.from_ndarray(smooth_rgba(64, 48), T.RGBA)
    loop = asyncio.get_running_loop()
    converted = await loop.run_in_executor(None, frame.convert, T.I420)
    assert converted.type == T.I420 and bytes(converted.data) == bytes(frame.convert(T.I420).data)


def test_bench_engine_choice_is_undone_afterwards(capsys: pytest.CaptureFixture[str]) -> None:
    from kitewire.frames import _libyuv

    before = _libyuv.enabled()
    assert (
        bench.run(_parse("convert", "--engine", "opencv", "--size", "16x16", "--repeats", "1", "--pairs", "RGBA-I420"))
        == 0
    )
    assert "engine OpenCV/numpy" in capsys.readouterr().out
    assert _libyuv.enabled() == before


def test_bench_bands_choice_is_shown_and_undone_afterwards(capsys: pytest.CaptureFixture[str]) -> None:
    from kitewire.frames import _bands

    before = _bands.enabled()
    assert (
        bench.run(_parse("convert", "--bands", "on", "--size", "16x16", "--repeats", "1", "--pairs", "RGBA-I420")) == 0
    )
    assert "two bands on two threads" in capsys.readouterr().out
    assert (
        bench.run(_parse("convert", "--bands", "off", "--size", "16x16", "--repeats", "1", "--pairs", "RGBA-I420")) == 0
    )
    assert "one band" in capsys.readouterr().out
    assert _bands.enabled() == before
