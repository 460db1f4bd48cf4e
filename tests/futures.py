"""A helper for event callbacks that settle a future with their first call."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


def resolve_once(future: asyncio.Future[T], value: T) -> None:
    """Set ``future``'s result unless an earlier event already did."""
    if not future.done():
        future.set_result(value)
