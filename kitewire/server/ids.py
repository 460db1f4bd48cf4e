"""LiveKit-style identifiers: a type prefix and 12 random base62 characters."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

ROOM_PREFIX = "RM_"
PARTICIPANT_PREFIX = "PA_"
TRACK_PREFIX = "TR_"


def new_id(prefix: str) -> str:
    """A fresh identifier such as ``PA_3kR9a0bQx2Lm`` (the SDKs check the prefix)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))
