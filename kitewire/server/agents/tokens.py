"""Tokens on the agent side of the server: the worker's and the job's."""

from __future__ import annotations

from collections.abc import Mapping

from livekit.protocol import models as pb_models

from kitewire.signal.token import AccessClaims, TokenError, VideoGrant, create_token, verify_token

__all__ = ["AGENT_KIND", "job_token", "verify_worker_token"]

#: The ``kind`` claim of a job's token; the room announces its bearer as ParticipantInfo.Kind.AGENT.
AGENT_KIND = "agent"


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
