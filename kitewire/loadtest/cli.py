"""``kitewire load-test``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET

from .params import (
    MAX_DURATION,
    MAX_PUBLISHERS,
    MAX_SUBSCRIBERS,
    RESOLUTIONS,
    VIDEO_CODECS,
    LoadTestParams,
    LoadTestResult,
)
from .report import format_report
from .runner import run_load_test


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire load-test``."""
    parser.add_argument("--url", default="ws://127.0.0.1:7880", help="server URL (loopback only; default %(default)s)")
    parser.add_argument("--api-key", default=DEV_API_KEY, help="API key (default %(default)s)")
    parser.add_argument("--api-secret", default=DEV_API_SECRET, help="API secret (default %(default)s)")
    parser.add_argument("--room", default="load-test", help="room name (default %(default)s)")
    parser.add_argument(
        "--video-publishers", type=int, default=1, help=f"simulated video publishers, 1..{MAX_PUBLISHERS} (default 1)"
    )
    parser.add_argument(
        "--subscribers", type=int, default=1, help=f"simulated subscribers, 0..{MAX_SUBSCRIBERS} (default 1)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help=f"measuring window in seconds, 1..{MAX_DURATION:g} (default 10)"
    )
    parser.add_argument("--resolution", default="720p", choices=list(RESOLUTIONS), help="published size (default 720p)")
    parser.add_argument("--video-codec", default="vp8", choices=list(VIDEO_CODECS), help="video codec (default vp8)")
    parser.add_argument(
        "--simulcast",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish livekit's simulcast layers (q/h/f for 720p; default on, as in lk load-test)",
    )
    parser.add_argument(
        "--single-pc",
        action="store_true",
        help="subscribers join like livekit 1.x SDKs (/rtc/v1, one PeerConnection) instead of /rtc with two",
    )
    parser.add_argument("--server-pid", type=int, default=None, help="measure this server process's CPU")
    parser.add_argument(
        "--embedded", action="store_true", help="start 'kitewire serve --dev' in a child process and test it"
    )
    parser.add_argument(
        "--warmup", type=float, default=15.0, help="longest wait for media before measuring (seconds, default 15)"
    )
    parser.add_argument("--no-track-table", action="store_true", help="print only the summaries")


def _params_from_args(args: argparse.Namespace) -> LoadTestParams:
    return LoadTestParams(
        url=args.url,
        api_key=args.api_key,
        api_secret=args.api_secret,
        room=args.room,
        video_publishers=args.video_publishers,
        subscribers=args.subscribers,
        duration=args.duration,
        resolution=args.resolution,
        video_codec=args.video_codec,
        simulcast=args.simulcast,
        single_pc=args.single_pc,
        server_pid=args.server_pid,
        embedded=args.embedded,
        warmup=args.warmup,
    )


async def _run_until_terminated(params: LoadTestParams) -> LoadTestResult:
    # SIGTERM cancels the run like Ctrl-C does (asyncio.run handles SIGINT),
    # so connections and the embedded server are closed either way.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_load_test(params, log=lambda line: print(line, flush=True))
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``kitewire load-test``: 0 when every subscriber got every track, else 1 (2 on bad options)."""
    try:
        params = _params_from_args(args)
        params.validate()
    except ValueError as exc:
        print(f"kitewire load-test: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        result = asyncio.run(_run_until_terminated(params))
    except asyncio.CancelledError:
        print("kitewire load-test: terminated; every connection was closed", file=sys.stderr)
        return 128 + signal.SIGTERM
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"kitewire load-test: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_report(result, per_track=not args.no_track_table))
    return 0 if result.complete else 1
