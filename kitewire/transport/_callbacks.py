"""Calling user callbacks from transport events."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def invoke_callback(
    tasks: set[asyncio.Future[Any]] | None,
    label: str,
    subject: object,
    callback: Callable[..., object] | None,
    *args: object,
) -> None:
    """Call ``callback(*args)``; schedule it when it returns an awaitable (kept in
    ``tasks`` until done, so it is not garbage-collected mid-flight); never raise:
    a failing user callback is logged (as ``label`` and ``subject``) and must not
    break the transport."""
    if callback is None:
        return
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            if tasks is not None:
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    except Exception:
        logger.exception("%s %r failed", label, subject)
