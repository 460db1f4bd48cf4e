"""Tokens on the agent side of the server: the worker's, the job's, and the dispatches a join token asks for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt
from google.protobuf import json_format
from livekit.protocol import agent_dispatch as pb_dispatch
from livekit.protocol import models as pb_models
from livekit.protocol import room as pb_room

from kitewire.signal.token import AccessClaims, TokenError, VideoGrant, create_token, verify_token

__all__ = ["AGENT_KIND", "job_token", "token_agent_dispatches", "verify_worker_token"]

#: The ``kind`` claim of a job's token; the room announces its bearer as ParticipantInfo.Kind.AGENT.
AGENT_KIND = "agent"

# A join token's roomConfig asks for at most this many agents (LiveKit has no stated bound; a room
# does not need more, and each one is a job the server keeps).
MAX_TOKEN_AGENTS = 16


def verify_worker_token(token: str, keys: Mapping[str, str]) -> AccessClaims:
    """The claims of a worker's ``/agent`` token; TokenError (status 401) unless it is valid and has ``video.agent``."""
    if not token:
        raise TokenError("missing access token (Authorization: Bearer)")
    claims = verify_token(token, keys)
    if not claims.video.agent:
        raise TokenError("permissions denied: a worker token needs the agent grant (video.agent)")
    return claims


def job_token(
    *,
    api_key: str,
    api_secret: str,
    room: str,
    identity: str,
    name: str,
    metadata: str,
    attributes: Mapping[str, str],
    permissions: pb_models.ParticipantPermission,
) -> str:
    """The token a worker's job joins its room with: kind agent, the permissions the worker registered with.

    The agent may always update its own metadata and attributes (livekit-agents sets ``lk.agent.*``).
    """
    sources = tuple(pb_models.TrackSource.Name(source).lower() for source in permissions.can_publish_sources)
    grant = VideoGrant(
        room_join=True,
        room=room,
        can_publish=permissions.can_publish,
        can_subscribe=permissions.can_subscribe,
        can_publish_data=permissions.can_publish_data,
        can_publish_sources=sources,
        can_update_own_metadata=True,
        hidden=permissions.hidden,
        agent=True,
    )
    return create_token(
        api_key,
        api_secret,
        identity=identity,
        room=room,
        name=name,
        metadata=metadata,
        attributes=attributes,
        kind=AGENT_KIND,
        grant=grant,
    )


def token_agent_dispatches(token: str) -> list[pb_dispatch.RoomAgentDispatch]:
    """The agents a (verified) join token's ``roomConfig.agents`` asks for, in order.

    The token has been verified by the caller; this only reads its payload.
    Raises TokenError when roomConfig is not a RoomConfiguration in protobuf JSON.
    """
    try:
        payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenError(f"malformed access token: {exc}") from None
    room_config = payload.get("roomConfig")
    if room_config is None:
        return []
    if not isinstance(room_config, dict):
        raise TokenError(f"roomConfig must be an object, got {room_config!r}")
    config = pb_room.RoomConfiguration()
    try:
        json_format.ParseDict(room_config, config, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise TokenError(f"roomConfig is not a RoomConfiguration: {exc}") from None
    if len(config.agents) > MAX_TOKEN_AGENTS:
        raise TokenError(f"roomConfig.agents: expected at most {MAX_TOKEN_AGENTS} agents, got {len(config.agents)}")
    return list(config.agents)
