"""``kitewire serve``: run the SFU until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET, parse_keys

from .config import ServerConfig

__all__ = ["add_arguments", "build_config", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire serve`` (livekit-server's names where it has them)."""
    parser.add_argument(
        "--dev",
        action="store_true",
        help=f"development mode: API key {DEV_API_KEY!r} with secret {DEV_API_SECRET!r} when no keys are given, "
        "debug logging",
    )
    parser.add_argument(
        "--bind",
        action="append",
        default=None,
        help="address to listen on; repeat for several (default 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=None, help="HTTP/WebSocket port (default 7880; 0 picks a free one)")
    parser.add_argument("--udp-port", type=int, default=None, help="one UDP port for all WebRTC traffic (rtc.udp_port)")
    parser.add_argument(
        "--keys", default=None, help="API keys as 'key: secret' (comma-separated for several; default $LIVEKIT_KEYS)"
    )
    parser.add_argument("--config", default=None, help="YAML config file (livekit.yaml style)")
    parser.add_argument(
        "--config-body", default=None, help="YAML config as text (default $LIVEKIT_CONFIG), applied after --config"
    )
    parser.add_argument(
        "--log-level", default=None, choices=["debug", "info", "warning", "error"], help="log level (default info)"
    )


def build_config(args: argparse.Namespace, *, warn: Callable[[str], None] | None = None) -> ServerConfig:
    """Merge defaults, the config file, the config body and command-line options (in that order).

    Each ignored livekit-server key is reported once through ``warn`` (default: a
    line on stderr). Raises ValueError naming an unknown key or a bad value.
    """
    report = warn if warn is not None else _warn
    config = ServerConfig()
    warnings: list[str] = []
    if args.config:
        warnings += config.load_yaml(args.config)
    body = args.config_body if args.config_body is not None else os.environ.get("LIVEKIT_CONFIG")
    if body:
        source = "--config-body" if args.config_body is not None else "LIVEKIT_CONFIG"
        warnings += config.load_yaml_text(body, source)
    for line in dict.fromkeys(warnings):
        report(line)
    # As livekit-server: --keys (default $LIVEKIT_KEYS) replaces the keys of the config.
    keys_text = args.keys if args.keys is not None else os.environ.get("LIVEKIT_KEYS")
    if keys_text:
        config.keys = parse_keys(keys_text)
    if args.bind:
        config.bind_addresses = list(args.bind)
    if args.port is not None:
        config.port = args.port
    if args.udp_port is not None:
        config.udp_port = args.udp_port
    if args.dev:
        config.development = True
    config.apply_development()
    if args.log_level is not None:
        config.log_level = args.log_level
    config.validate()
    return config


def _warn(line: str) -> None:
    print(f"kitewire serve: warning: {line}", file=sys.stderr, flush=True)


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
        for address in server.listening_addresses:
            print(f"kitewire serve: {address}", flush=True)
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
        addresses = ", ".join(f"{host}:{config.port}" for host in config.bind_addresses)
        if config.udp_port:
            addresses += f" (and UDP port {config.udp_port})"
        print(f"kitewire serve: cannot listen on {addresses}: {exc}", file=sys.stderr)
        return 1
    return 0
