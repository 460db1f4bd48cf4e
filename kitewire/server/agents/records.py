"""What the dispatcher keeps: dispatches (which agent a room wants) and their jobs, and the rooms it reads."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from livekit.protocol import agent as pb_agent
from livekit.protocol import agent_dispatch as pb_dispatch
from livekit.protocol import models as pb_models

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["AgentMember", "AgentRoom", "DispatchRecord", "JobRecord"]

#: Ended jobs a dispatch still lists (ListDispatch shows recent history, not all of it).
MAX_ENDED_JOBS_PER_DISPATCH = 32

_FINAL_STATUSES = (pb_agent.JS_SUCCESS, pb_agent.JS_FAILED, pb_agent.JS_CANCELLED)


class AgentMember(Protocol):
    """What the dispatcher reads of a participant (the server's ``Participant`` is one)."""

    @property
    def identity(self) -> str: ...

    @property
    def published(self) -> Mapping[str, object]: ...

    def info(self) -> pb_models.ParticipantInfo: ...

    async def close(self, reason: str, disconnect_reason: int = ...) -> None: ...


class AgentRoom(Protocol):
    """What the dispatcher reads of a room (the server's ``Room`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def sid(self) -> str: ...

    @property
    def participants(self) -> Mapping[str, AgentMember]: ...

    def info(self) -> pb_models.Room: ...


@dataclasses.dataclass(eq=False)
class JobRecord:
    """One job: a dispatch's agent for a room (or for one participant of it), offered to workers in turn."""

    job: pb_agent.Job
    dispatch: DispatchRecord
    #: The participant a publisher/participant job is for; "" for a room job.
    target: str = ""
    worker: Worker | None = None
    #: Workers asked already (each is asked once per round of offers).
    tried: set[str] = dataclasses.field(default_factory=set)
    #: True while no worker could take it; a new or newly available worker starts another round.
    waiting: bool = False
    placing: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        """The job id."""
        return self.job.id

    @property
    def ended(self) -> bool:
        """True once the job reached a final status."""
        return self.job.state.status in _FINAL_STATUSES

    def set_status(
        self, status: pb_agent.JobStatus, error: str = "", reason: pb_agent.JobStateReason | None = None
    ) -> None:
        """Record a status change (and its time) in the job's state."""
        now_ms = int(time.time() * 1000)
        state = self.job.state
        state.status = status
        state.updated_at = now_ms
        if error:
            state.error = error
        if reason is not None:
            state.reason = reason
        if status == pb_agent.JS_RUNNING and not state.started_at:
            state.started_at = now_ms
        if status in _FINAL_STATUSES and not state.ended_at:
            state.ended_at = now_ms


@dataclasses.dataclass(eq=False)
class DispatchRecord:
    """One dispatch: agent ``agent_name`` wanted in ``room`` (the automatic one has the empty name)."""

    id: str
    agent_name: str
    room: str
    metadata: str = ""
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    restart_policy: int = pb_dispatch.JRP_ON_FAILURE
    created_at: float = dataclasses.field(default_factory=time.time)
    deleted_at: float = 0.0
    #: The sid of the room the dispatch is running in; "" until that room is open.
    room_sid: str = ""
    jobs: list[JobRecord] = dataclasses.field(default_factory=list)
    #: Targets whose job ended for good (the agent finished or failed): not dispatched again.
    done: set[str] = dataclasses.field(default_factory=set)

    def live_job(self, target: str) -> JobRecord | None:
        """The unended job for ``target``, if any."""
        for record in self.jobs:
            if record.target == target and not record.ended:
                return record
        return None

    def add_job(self, record: JobRecord) -> None:
        """Keep ``record``, forgetting the oldest ended jobs beyond the history bound."""
        self.jobs.append(record)
        ended = [job for job in self.jobs if job.ended]
        for old in ended[: max(0, len(ended) - MAX_ENDED_JOBS_PER_DISPATCH)]:
            self.jobs.remove(old)

    def to_proto(self) -> pb_dispatch.AgentDispatch:
        """This dispatch as ListDispatch and CreateDispatch return it, its jobs included."""
        dispatch = pb_dispatch.AgentDispatch()
        dispatch.id = self.id
        dispatch.agent_name = self.agent_name
        dispatch.room = self.room
        dispatch.metadata = self.metadata
        dispatch.restart_policy = self.restart_policy  # type: ignore[assignment]
        dispatch.attributes.update(self.attributes)
        dispatch.state.created_at = int(self.created_at * 1_000_000_000)
        if self.deleted_at:
            dispatch.state.deleted_at = int(self.deleted_at * 1_000_000_000)
        for record in self.jobs:
            dispatch.state.jobs.append(record.job)
        return dispatch
