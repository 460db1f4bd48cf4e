"""``kitewire bench``: benchmarks that print their tables.

``kitewire bench convert`` times every frame-layout conversion at 1920x1080
beside livekit's own convert and a plain copy (see :mod:`kitewire.bench.convert`).
``kitewire bench e2e|memory|load|all [--quick]`` runs the end-to-end, memory and
SFU capacity benchmarks, or the whole suite, and writes their sections of
BENCHMARKS.md (see :mod:`kitewire.bench.suite`). ``kitewire bench soak --minutes N``
streams both pairs for N minutes and writes its own section (see :mod:`kitewire.bench.soak`).
``kitewire bench loss`` runs both pairs under UDP loss (see :mod:`kitewire.bench.loss`).
``kitewire bench audio`` times audio from capture_frame to the AudioStream yield beside the
official pair (see :mod:`kitewire.bench.audio`).
``kitewire bench busy-app`` streams while the application's Python holds the GIL, beside
the official SDK (see :mod:`kitewire.bench.busy_app`).
``kitewire bench av-sync`` measures how far apart a flash and its beep reach official and kitewire
subscribers from official and kitewire publishers, the official pair as anchor (see
:mod:`kitewire.bench.av_sync`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

BENCHMARKS = ("convert", "e2e", "memory", "load", "loss", "soak", "audio", "busy-app", "av-sync", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the bench command's options."""
    parser.add_argument(
        "benchmark",
        nargs="?",
        default="all",
        choices=BENCHMARKS,
        help="which benchmark to run (default: all, writing BENCHMARKS.md)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions for a fast rough table")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (median is shown)")
    parser.add_argument("--size", default="1920x1080", help="frame size WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument(
        "--pairs",
        default=None,
        help="comma-separated SOURCE-TARGET pairs to time, e.g. RGBA-I420,I420-RGBA (default: all 121)",
    )
    parser.add_argument("--no-livekit", action="store_true", help="do not time livekit's convert")
    parser.add_argument(
        "--bands",
        choices=("default", "on", "off"),
        default="default",
        help="on: frames from KITEWIRE_BAND_MIN_PIXELS convert as two bands on two threads; "
        "off: one band on one thread; default: as KITEWIRE_BANDS says (off unless set to 1)",
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "opencv"),
        default="auto",
        help="auto: libyuv where installed, else OpenCV/numpy; opencv: never libyuv",
    )
    from kitewire.bench import audio, av_sync, busy_app, loss, soak, suite

    audio.add_arguments(parser)
    av_sync.add_arguments(parser)
    suite.add_arguments(parser)
    busy_app.add_arguments(parser)
    soak.add_arguments(parser)
    loss.add_arguments(parser)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width_text, height_text = text.lower().split("x")
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise ValueError(f"--size must look like 1920x1080, got {text!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return width, height


def _parse_pairs(text: str | None) -> list[tuple[int, int]] | None:
    from kitewire.frames import VideoBufferType

    if not text:
        return None
    pairs = []
    for item in text.split(","):
        try:
            source, target = item.strip().split("-")
            pairs.append((VideoBufferType.Value(source.upper()), VideoBufferType.Value(target.upper())))
        except ValueError:
            raise ValueError(f"--pairs entries must look like RGBA-I420, got {item!r}") from None
    return pairs


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark and print its table; returns the exit status."""
    if args.benchmark == "soak":
        from kitewire.bench import soak

        return soak.run(args)
    if args.benchmark == "audio":
        from kitewire.bench import audio

        return audio.run(args)
    if args.benchmark == "av-sync":
        from kitewire.bench import av_sync

        return av_sync.run(args)
    if args.benchmark == "busy-app":
        from kitewire.bench import busy_app

        return busy_app.run(args)
    if args.benchmark == "loss":
        from kitewire.bench import loss

        return loss.run(args)
    if args.benchmark != "convert":
        from kitewire.bench import suite

        return suite.run(args)
    from kitewire.bench import convert

    try:
        width, height = _parse_size(args.size)
        pairs = _parse_pairs(args.pairs)
        if args.repeats is not None and args.repeats < 1:
            raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    except ValueError as error:
        print(f"kitewire bench: {error}", file=sys.stderr)
        return 2
    from kitewire.frames import _bands, _libyuv

    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 25)
    libyuv_was_enabled = _libyuv.set_enabled(_libyuv.enabled() and args.engine != "opencv")
    bands_choice = getattr(args, "bands", "default")
    bands_were_enabled = _bands.set_enabled(_bands.enabled() if bands_choice == "default" else bands_choice == "on")
    try:
        engine = "libyuv + OpenCV/numpy" if _libyuv.enabled() else "OpenCV/numpy (libyuv off or not installed)"
        if _bands.enabled():
            engine += f", two bands on two threads from {_bands.MIN_PIXELS} pixels"
        else:
            engine += ", one band"
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
        print(
            f"kitewire bench convert: {width}x{height}, median of {repeats} runs, engine {engine}, "
            f"python {platform.python_version()}, {os.cpu_count()} cpus, load average {load}"
        )
        print(convert.TABLE_HEADER)
        results = convert.run_pairs(
            width,
            height,
            repeats,
            pairs=pairs,
            use_livekit=not args.no_livekit,
            progress=lambda result: print(convert.format_row(result), flush=True),
        )
        print()
        print(convert.summary(results))
        if pairs is None:
            print()
            print(f"PyAV and numpy bridges, {width}x{height} I420:")
            print(convert.format_bridges(convert.run_bridges(width, height, repeats)))
    finally:
        _libyuv.set_enabled(libyuv_was_enabled)
        _bands.set_enabled(bands_were_enabled)
    return 0
