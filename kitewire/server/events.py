"""One structured log line per room event (join, leave, publish, subscribe, refusal).

Lines look like ``event=join room=demo identity=alice sid=PA_x`` so they can
be grepped and parsed without a log pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("kitewire.server")


def _format_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with ``fields`` as ``key=value`` pairs on one line."""
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={event}"]
    parts.extend(f"{key}={_format_value(value)}" for key, value in fields.items())
    logger.log(level, " ".join(parts))


def log_refusal(room: str, identity: str, request: str, reason: str) -> None:
    """Log a refused request or message as ``event=refused`` at WARNING (the reason names the bound or grant)."""
    log_event("refused", logging.WARNING, room=room, identity=identity, request=request, reason=reason)
