"""``kitewire token``: print a join token."""

from __future__ import annotations

import argparse
import os
import sys

from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET, create_token

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire token``."""
    parser.add_argument("--identity", required=True, help="participant identity (the token's sub)")
    parser.add_argument("--room", required=True, help="room to join")
    parser.add_argument("--name", default="", help="display name")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("LIVEKIT_API_KEY", DEV_API_KEY),
        help="API key (default $LIVEKIT_API_KEY or devkey)",
    )
    parser.add_argument(
        "--api-secret",
        default=os.environ.get("LIVEKIT_API_SECRET", DEV_API_SECRET),
        help="API secret (default $LIVEKIT_API_SECRET or secret)",
    )
    parser.add_argument("--can-publish", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--can-subscribe", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--can-publish-data", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--ttl", type=float, default=6 * 3600, help="validity in seconds (default 6 h)")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``kitewire token``."""
    if args.ttl <= 0:
        print(f"kitewire token: --ttl: expected a positive number of seconds, got {args.ttl}", file=sys.stderr)
        return 2
    try:
        token = create_token(
            args.api_key,
            args.api_secret,
            identity=args.identity,
            room=args.room,
            name=args.name,
            ttl=args.ttl,
            can_publish=args.can_publish,
            can_subscribe=args.can_subscribe,
            can_publish_data=args.can_publish_data,
        )
    except ValueError as exc:
        print(f"kitewire token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
