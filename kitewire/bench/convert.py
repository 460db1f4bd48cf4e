"""Conversion benchmark: every layout pair at 1920x1080, beside livekit and a plain copy.

For each ordered pair it prints the median time of ``VideoFrame.convert``,
of livekit's own ``convert`` (when the ``livekit`` package is importable and
the pair is one livekit supports without crashing), and of a plain copy of a
buffer the size of the output (allocation included, as in a conversion).
Targets: at least 3x faster than livekit where livekit supports the pair, and
at most 3x the copy time for every pair.
"""

from __future__ import annotations

import functools
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kitewire.frames import VideoBufferType as T
from kitewire.frames import VideoFrame

# Pairs livekit 1.2.1 converts. Found by calling its convert on every ordered
# pair (with and without flip_y), each in its own subprocess: every other pair
# raised "not supported" or aborted the process (ABGR sources, I010 -> RGBA /
# BGRA / I420, NV12 -> NV12), so livekit is called on these pairs only.
LIVEKIT_SUPPORTED_PAIRS: frozenset[tuple[int, int]] = frozenset(
    {
        (T.RGBA, T.BGRA),
        (T.RGBA, T.I420),
        (T.ARGB, T.I420),
        (T.BGRA, T.RGBA),
        (T.BGRA, T.I420),
        (T.RGB24, T.I420),
        (T.I420, T.RGBA),
        (T.I420, T.ABGR),
        (T.I420, T.ARGB),
        (T.I420, T.BGRA),
        (T.I420, T.RGB24),
        (T.I420, T.I420),
        (T.I420A, T.I420),
        (T.I420A, T.I420A),
        (T.I422, T.RGBA),
        (T.I422, T.ABGR),
        (T.I422, T.ARGB),
        (T.I422, T.I420),
        (T.I422, T.I422),
        (T.I444, T.RGBA),
        (T.I444, T.BGRA),
        (T.I444, T.I420),
        (T.I444, T.I444),
        (T.NV12, T.RGBA),
        (T.NV12, T.BGRA),
        (T.NV12, T.I420),
    }
)

TARGET_VS_LIVEKIT = 3.0  # kitewire at least this many times faster than livekit
TARGET_VS_COPY = 3.0  # kitewire at most this many times a copy of the output


@dataclass
class PairResult:
    """Median timings (seconds) of one conversion pair."""

    source_type: int
    target_type: int
    kitewire: float
    copy: float
    livekit: float | None

    @property
    def vs_livekit(self) -> float | None:
        """How many times faster than livekit (None when livekit was not run)."""
        return None if self.livekit is None else self.livekit / self.kitewire

    @property
    def vs_copy(self) -> float:
        """kitewire time as a multiple of the copy time."""
        return self.kitewire / self.copy

    @property
    def target_met(self) -> bool:
        """Whether this pair meets both targets that apply to it."""
        if self.vs_copy > TARGET_VS_COPY:
            return False
        return self.vs_livekit is None or self.vs_livekit >= TARGET_VS_LIVEKIT


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``action`` after one warm-up call."""
    action()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def source_frames(width: int, height: int) -> dict[int, VideoFrame]:
    """One frame per layout holding a smooth colour image (content barely affects speed)."""
    ys, xs = np.mgrid[0:height, 0:width]
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., 0] = (xs * 255 // max(width - 1, 1)).astype(np.uint8)
    rgba[..., 1] = (ys * 255 // max(height - 1, 1)).astype(np.uint8)
    rgba[..., 2] = ((xs + ys) % 256).astype(np.uint8)
    rgba[..., 3] = 255
    base = VideoFrame.from_ndarray(rgba, T.RGBA)
    return {buffer_type: base.convert(buffer_type) for buffer_type in T.values()}


def _livekit_converter() -> Callable[[VideoFrame, int], Callable[[], object]] | None:
    try:
        from livekit import rtc
    except ImportError:
        return None

    def prepare(frame: VideoFrame, target_type: int) -> Callable[[], object]:
        source_type: Any = frame.type
        their_target: Any = target_type
        theirs = rtc.VideoFrame(frame.width, frame.height, source_type, bytearray(frame.data))
        return lambda: theirs.convert(their_target)

    return prepare


def run_pairs(
    width: int,
    height: int,
    repeats: int,
    pairs: list[tuple[int, int]] | None = None,
    use_livekit: bool = True,
    progress: Callable[[PairResult], None] | None = None,
) -> list[PairResult]:
    """Time the given pairs (all 121 by default) and return their results."""
    frames = source_frames(width, height)
    livekit = _livekit_converter() if use_livekit else None
    chosen = pairs or [(s, t) for s in T.values() for t in T.values()]
    results: list[PairResult] = []
    gc.disable()  # keep collector pauses out of the medians
    try:
        for source_type, target_type in chosen:
            frame = frames[source_type]
            ours = median_seconds(functools.partial(frame.convert, target_type), repeats)
            output = np.asarray(frames[target_type].data)
            copy = median_seconds(functools.partial(np.copy, output), repeats)
            theirs = None
            if livekit is not None and (source_type, target_type) in LIVEKIT_SUPPORTED_PAIRS:
                theirs = median_seconds(livekit(frame, target_type), repeats)
            result = PairResult(source_type, target_type, ours, copy, theirs)
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        gc.enable()
    return results


def format_row(result: PairResult) -> str:
    """One markdown table row."""
    pair = f"{T.Name(result.source_type)} -> {T.Name(result.target_type)}"
    livekit = "-" if result.livekit is None else f"{result.livekit * 1e3:.2f}"
    vs_livekit = "-" if result.vs_livekit is None else f"{result.vs_livekit:.1f}x"
    met = "yes" if result.target_met else "NO"
    return (
        f"| {pair:<15} | {result.kitewire * 1e3:8.2f} | {livekit:>8} | {vs_livekit:>7} "
        f"| {result.copy * 1e3:6.2f} | {result.vs_copy:5.1f}x | {met:>3} |"
    )


TABLE_HEADER = (
    "| pair            | kitewire ms | livekit ms | faster than livekit | copy ms | vs copy | target met |\n"
    "|-----------------|---------:|---------:|--------:|-------:|-------:|----:|"
)


def summary(results: list[PairResult]) -> str:
    """Totals: how many pairs meet each target."""
    with_livekit = [r for r in results if r.vs_livekit is not None]
    livekit_met = sum(1 for r in with_livekit if (r.vs_livekit or 0) >= TARGET_VS_LIVEKIT)
    copy_met = sum(1 for r in results if r.vs_copy <= TARGET_VS_COPY)
    lines = [
        f"pairs timed: {len(results)}; both targets met: {sum(r.target_met for r in results)}",
        f">= {TARGET_VS_LIVEKIT:.0f}x faster than livekit: {livekit_met}/{len(with_livekit)} livekit-supported pairs",
        f"<= {TARGET_VS_COPY:.0f}x a copy of the output: {copy_met}/{len(results)} pairs",
    ]
    return "\n".join(lines)


def run_bridges(width: int, height: int, repeats: int) -> list[tuple[str, float, float]]:
    """Time the PyAV bridges on I420: (name, seconds, seconds of a copy of the same bytes)."""
    import av

    frame = source_frames(width, height)[T.I420]
    decoded = frame.to_av()  # padded rows, like a decoder's yuv420p output
    flat = np.asarray(frame.data)
    copy = median_seconds(lambda: np.copy(flat), repeats)
    rgb = np.ascontiguousarray(frame.convert(T.RGB24).to_ndarray())
    rgb_copy = median_seconds(lambda: np.copy(rgb), repeats)
    pyav_rgb = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    rgba = source_frames(width, height)[T.RGBA]
    pyav_rgba = rgba.to_av()
    return [
        ("to_av(RGBA, 'yuv420p') (encoder input)", median_seconds(lambda: rgba.to_av("yuv420p"), repeats), copy),
        (
            "PyAV reformat rgba -> yuv420p (swscale)",
            median_seconds(lambda: pyav_rgba.reformat(format="yuv420p"), repeats),
            copy,
        ),
        ("from_av(yuv420p) -> I420", median_seconds(lambda: VideoFrame.from_av(decoded), repeats), copy),
        ("to_av(I420) -> yuv420p", median_seconds(frame.to_av, repeats), copy),
        ("from_av(rgb24) -> RGB24", median_seconds(lambda: VideoFrame.from_av(pyav_rgb), repeats), rgb_copy),
        ("to_ndarray (view)", median_seconds(frame.to_ndarray, repeats), copy),
    ]


def format_bridges(rows: list[tuple[str, float, float]]) -> str:
    """Markdown table of :func:`run_bridges` results."""
    lines = ["| bridge | kitewire ms | copy ms | vs copy |", "|---|---:|---:|---:|"]
    for name, seconds, copy in rows:
        lines.append(f"| {name} | {seconds * 1e3:.3f} | {copy * 1e3:.3f} | {seconds / copy:.2f}x |")
    return "\n".join(lines)
