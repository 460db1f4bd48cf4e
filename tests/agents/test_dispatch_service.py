"""AgentDispatchService called directly (protobuf in, protobuf out), and the agent-side tokens."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from kitewire.server.agents import (
    AgentDispatchService,
    Dispatcher,
    DispatchError,
    job_token,
    verify_worker_token,
)
from kitewire.server.agents.records import AgentRoom
from kitewire.server.twirp import TwirpError
from kitewire.signal.token import AccessClaims, TokenError, VideoGrant, verify_token
from livekit.protocol import agent_dispatch as pb_dispatch
from livekit.protocol import models as pb_models

from .protocol_worker import decode, worker_token

KEYS = {"devkey": "secret"}


def admin(room: str) -> AccessClaims:
    return AccessClaims(api_key="devkey", identity="", video=VideoGrant(room_admin=True, room=room))


def service() -> AgentDispatchService:
    rooms: dict[str, AgentRoom] = {}

    def no_rooms() -> Mapping[str, AgentRoom]:
        return rooms

    return AgentDispatchService(Dispatcher(no_rooms, KEYS))


def test_create_list_delete_with_metadata_and_attributes() -> None:
    dispatches = service()
    created = dispatches.create_dispatch(
        pb_dispatch.CreateAgentDispatchRequest(agent_name="helper", room="r", metadata="m", attributes={"k": "v"}),
        admin("r"),
    )
    assert created.id.startswith("AD_") and created.room == "r" and created.metadata == "m"
    assert dict(created.attributes) == {"k": "v"} and created.state.created_at > 0
    # no room open yet: the dispatch waits, without jobs
    assert list(created.state.jobs) == []
    other = dispatches.create_dispatch(pb_dispatch.CreateAgentDispatchRequest(agent_name="other", room="r"), admin("r"))
    listed = dispatches.list_dispatch(pb_dispatch.ListAgentDispatchRequest(room="r"), admin("r"))
    assert [d.id for d in listed.agent_dispatches] == [created.id, other.id]
    one = dispatches.list_dispatch(pb_dispatch.ListAgentDispatchRequest(room="r", dispatch_id=other.id), admin("r"))
    assert [d.agent_name for d in one.agent_dispatches] == ["other"]
    deleted = dispatches.delete_dispatch(
        pb_dispatch.DeleteAgentDispatchRequest(dispatch_id=created.id, room="r"), admin("r")
    )
    assert deleted.id == created.id and deleted.state.deleted_at >= deleted.state.created_at
    listed = dispatches.list_dispatch(pb_dispatch.ListAgentDispatchRequest(room="r"), admin("r"))
    assert [d.id for d in listed.agent_dispatches] == [other.id]


@pytest.mark.parametrize(
    ("claims", "room", "code"),
    [
        (
            AccessClaims(api_key="devkey", identity="u", video=VideoGrant(room_join=True, room="r")),
            "r",
            "permission_denied",
        ),
        (admin("elsewhere"), "r", "permission_denied"),
        (admin(""), "r", "permission_denied"),
        (admin(""), "", "invalid_argument"),
    ],
)
def test_calls_are_refused_with_a_twirp_code(claims: AccessClaims, room: str, code: str) -> None:
    # DispatchError is a TwirpError; the grant checks are the Twirp layer's own
    with pytest.raises(TwirpError) as refused:
        service().create_dispatch(pb_dispatch.CreateAgentDispatchRequest(agent_name="a", room=room), claims)
    assert refused.value.code == code


def test_bad_requests_are_refused() -> None:
    dispatches = service()
    with pytest.raises(DispatchError) as refused:
        dispatches.delete_dispatch(pb_dispatch.DeleteAgentDispatchRequest(dispatch_id="AD_nope", room="r"), admin("r"))
    assert refused.value.code == "not_found"
    created = dispatches.create_dispatch(pb_dispatch.CreateAgentDispatchRequest(agent_name="a", room="r"), admin("r"))
    # a dispatch is deleted from its own room only
    with pytest.raises(DispatchError) as refused:
        dispatches.delete_dispatch(pb_dispatch.DeleteAgentDispatchRequest(dispatch_id=created.id, room="s"), admin("s"))
    assert refused.value.code == "not_found"
    for request in (
        pb_dispatch.CreateAgentDispatchRequest(agent_name="a", room="r", attributes={str(i): "v" for i in range(65)}),
        pb_dispatch.CreateAgentDispatchRequest(agent_name="a", room="r", attributes={"k": "v" * 5000}),
        pb_dispatch.CreateAgentDispatchRequest(agent_name="a", room="r", restart_policy=9),  # type: ignore[arg-type]
    ):
        with pytest.raises(DispatchError) as refused:
            dispatches.create_dispatch(request, admin("r"))
        assert refused.value.code == "invalid_argument"


def test_worker_tokens_need_the_agent_grant() -> None:
    assert verify_worker_token(worker_token(), KEYS).video.agent
    for token in (worker_token(agent=False), "", "x.y.z", worker_token(secret="wrong")):
        with pytest.raises(TokenError) as refused:
            verify_worker_token(token, KEYS)
        assert refused.value.status == 401


def test_a_job_token_carries_the_workers_permissions_and_the_jobs_attributes() -> None:
    permissions = pb_models.ParticipantPermission(
        can_publish=True,
        can_subscribe=False,
        can_publish_data=True,
        hidden=False,
        can_publish_sources=[pb_models.TrackSource.CAMERA, pb_models.TrackSource.MICROPHONE],
    )
    token = job_token(
        api_key="devkey",
        api_secret="secret",
        room="r",
        identity="agent-1",
        name="Agent",
        metadata="md",
        attributes={"lk.agent.name": "helper"},
        permissions=permissions,
    )
    claims = decode(token)
    assert claims["kind"] == "agent" and claims["sub"] == "agent-1" and claims["name"] == "Agent"
    assert claims["attributes"] == {"lk.agent.name": "helper"} and claims["metadata"] == "md"
    video = claims["video"]
    assert video["agent"] and video["roomJoin"] and video["room"] == "r" and video["canUpdateOwnMetadata"]
    assert video["canPublish"] and not video["canSubscribe"]
    assert video["canPublishSources"] == ["camera", "microphone"]
    # kitewire's own verification reads it back
    verified = verify_token(token, KEYS)
    assert (
        verified.kind == "agent"
        and verified.video.agent
        and verified.video.can_publish_sources == ("camera", "microphone")
    )
