"""``kitewire serve``: run the SFU until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET, parse_keys

from .config import ServerConfig

__all__ = ["add_arguments", "build_config", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire serve``."""
    parser.add_argument(
        "--dev", action="store_true", help=f"use API key {DEV_API_KEY!r} with secret {DEV_API_SECRET!r}"
    )
    parser.add_argument("--bind", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="HTTP/WebSocket port (default 7880; 0 picks a free one)")
    parser.add_argument(
        "--keys", default=None, help="API keys as 'key: secret' (comma-separated for several; default $LIVEKIT_KEYS)"
    )
    parser.add_argument("--config", default=None, help="YAML config file (livekit.yaml style)")
    parser.add_argument(
        "--log-level", default=None, choices=["debug", "info", "warning", "error"], help="log level (default info)"
    )


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Merge defaults, the config file and command-line options (in that order)."""
    config = ServerConfig()
    if args.config:
        config.load_yaml(args.config)
    if args.dev:
        config.keys = {**config.keys, DEV_API_KEY: DEV_API_SECRET}
    if args.keys:
        config.keys = {**config.keys, **parse_keys(args.keys)}
    if not config.keys and os.environ.get("LIVEKIT_KEYS"):
        # The variable livekit-server reads, so existing setups keep working.
        config.keys = parse_keys(os.environ["LIVEKIT_KEYS"])
    if args.bind is not None:
        config.bind = args.bind
    if args.port is not None:
        config.port = args.port
    if args.log_level is not None:
        config.log_level = args.log_level
    config.validate()
    return config


async def _serve(config: ServerConfig) -> None:
    from .server import Server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with Server(config) as server:
        print(f"kitewire serve: listening on {server.url}", flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Entry point of ``kitewire serve``."""
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"kitewire serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        print(f"kitewire serve: cannot listen on {config.bind}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0
