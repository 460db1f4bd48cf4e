"""Agent dispatch as LiveKit does it: dispatches per room, jobs offered to one worker at a time.

A room created while an unnamed worker is registered gets the automatic
dispatch (agent name ""); a token's ``roomConfig.agents`` or CreateDispatch
ask for named agents instead. Each dispatch yields one job per room (room
workers), per publishing participant (publisher workers) or per participant
(participant workers). A job is offered to the least loaded available worker
of that agent name; a decline or ten silent seconds pass it to the next one,
and a job nobody can take waits for a worker to register or free up. A worker
that leaves has its jobs ended and their agent participants removed, and its
jobs are offered again.

The dispatcher reads rooms through ``observe`` (the server calls it every
tick), so it needs no hooks inside rooms and participants.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from livekit.protocol import agent as pb_agent
from livekit.protocol import agent_dispatch as pb_dispatch
from livekit.protocol import models as pb_models

from ..events import log_event
from ..ids import new_id
from .records import AgentMember, AgentRoom, DispatchRecord, JobRecord
from .tokens import job_token
from .worker import AVAILABILITY_TIMEOUT_SECONDS, Worker

__all__ = ["MAX_DISPATCHES", "MAX_DISPATCHES_PER_ROOM", "MAX_WORKERS", "DispatchLimitError", "Dispatcher"]

logger = logging.getLogger("kitewire.server.agents")

#: Registered workers a server keeps; more are refused at the door.
MAX_WORKERS = 256
#: Dispatches a server keeps in all (those for rooms not open yet included).
MAX_DISPATCHES = 1024
#: Dispatches one room may have.
MAX_DISPATCHES_PER_ROOM = 64

# Ids of ended dispatches' jobs remembered, so their workers' final reports are not taken for errors.
MAX_FORGOTTEN_JOBS = 4096

DISPATCH_PREFIX = "AD_"
JOB_PREFIX = "AJ_"


def _is_agent(member: AgentMember) -> bool:
    # agents are not given jobs of their own, and only agents are removed with their worker
    return member.info().kind == pb_models.ParticipantInfo.AGENT


class DispatchLimitError(ValueError):
    """A dispatch would exceed a bound (MAX_DISPATCHES or MAX_DISPATCHES_PER_ROOM)."""


class Dispatcher:
    """Every worker and dispatch of one server.

    ``rooms`` returns the server's open rooms by name; ``keys`` are its API
    keys (a job's token is signed with the key its worker authenticated with);
    ``remove_participant`` closes a participant when its agent's worker left.
    """

    def __init__(self, rooms: Callable[[], Mapping[str, AgentRoom]], keys: Mapping[str, str]) -> None:
        self._rooms = rooms
        self._keys = keys
        self.workers: dict[str, Worker] = {}
        self.dispatches: dict[str, DispatchRecord] = {}
        self._room_sids: dict[str, str] = {}  # room name -> sid of the open room the dispatcher has seen
        self._tasks: set[asyncio.Task[None]] = set()
        # Jobs of dispatches gone with their room or deleted: a worker's late status for one is expected.
        self._forgotten_jobs: collections.OrderedDict[str, None] = collections.OrderedDict()
        #: Seconds a worker has to answer an availability request before the job goes to the next one.
        self.availability_timeout = AVAILABILITY_TIMEOUT_SECONDS

    # ----- workers -----

    @property
    def full(self) -> bool:
        """True when no further worker may register."""
        return len(self.workers) >= MAX_WORKERS

    def worker_joined(self, worker: Worker) -> None:
        """A worker registered: rooms may now get its agent, waiting jobs another offer."""
        self.workers[worker.id] = worker
        self._retry_waiting(worker.agent_name)
        for dispatch in list(self.dispatches.values()):
            if dispatch.agent_name == worker.agent_name:
                self._ensure_jobs(dispatch)

    def worker_available(self, worker: Worker) -> None:
        """A full worker has room again: offer it the jobs that wait."""
        self._retry_waiting(worker.agent_name)

    def worker_left(self, worker: Worker) -> None:
        """End the worker's jobs, remove their agents from their rooms, offer the jobs again (unless JRP_NEVER)."""
        self.workers.pop(worker.id, None)
        for dispatch in list(self.dispatches.values()):
            for record in list(dispatch.jobs):
                if record.worker is worker and not record.ended:
                    record.set_status(pb_agent.JS_FAILED, error="worker disconnected")
                    if dispatch.restart_policy == pb_dispatch.JRP_NEVER:
                        dispatch.done.add(record.target)
                    self._log_job("job_ended", record, status="JS_FAILED", reason="worker disconnected")
                    self._remove_agent(dispatch.room, record.job.state.participant_identity)
            self._ensure_jobs(dispatch)

    def job_status(self, worker: Worker, update: pb_agent.UpdateJobStatus) -> None:
        """A worker reports on one of its jobs (ValueError for a job it does not hold)."""
        record = self._job(update.job_id)
        if record is None and update.job_id in self._forgotten_jobs:
            return
        if record is None or record.worker is not worker:
            raise ValueError(f"status for job {update.job_id!r}, which is not assigned to this worker")
        if update.status not in pb_agent.JobStatus.values():
            raise ValueError(f"expected a JobStatus, got {update.status}")
        if record.ended:
            return
        record.set_status(update.status, error=update.error[:1024])
        if record.ended:
            record.dispatch.done.add(record.target)
            self._log_job("job_ended", record, status=pb_agent.JobStatus.Name(update.status), error=update.error[:200])

    # ----- dispatches -----

    def room_dispatches(self, room: str) -> list[DispatchRecord]:
        """The live dispatches for ``room``, oldest first."""
        return [d for d in self.dispatches.values() if d.room == room and not d.deleted_at]

    def create_dispatch(
        self,
        room: str,
        agent_name: str,
        *,
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        restart_policy: int = pb_dispatch.JRP_ON_FAILURE,
    ) -> DispatchRecord:
        """Dispatch ``agent_name`` to ``room`` (jobs start once the room is open and a worker is there)."""
        if len(self.dispatches) >= MAX_DISPATCHES:
            raise DispatchLimitError(f"expected at most {MAX_DISPATCHES} dispatches on this server, got one more")
        if len(self.room_dispatches(room)) >= MAX_DISPATCHES_PER_ROOM:
            raise DispatchLimitError(f"expected at most {MAX_DISPATCHES_PER_ROOM} dispatches in room {room!r}")
        dispatch = DispatchRecord(
            id=new_id(DISPATCH_PREFIX),
            agent_name=agent_name,
            room=room,
            metadata=metadata,
            attributes=dict(attributes or {}),
            restart_policy=restart_policy,
        )
        self.dispatches[dispatch.id] = dispatch
        log_event("dispatch_created", room=room, dispatch=dispatch.id, agent_name=agent_name)
        self._ensure_jobs(dispatch)
        return dispatch

    def delete_dispatch(self, dispatch_id: str) -> DispatchRecord | None:
        """Remove a dispatch; its running jobs are terminated. None when there is no such dispatch."""
        dispatch = self.dispatches.pop(dispatch_id, None)
        if dispatch is None:
            return None
        dispatch.deleted_at = time.time()
        self._end_jobs(dispatch, pb_agent.JSR_DISPATCH_DELETED, "dispatch deleted")
        log_event("dispatch_deleted", room=dispatch.room, dispatch=dispatch.id, agent_name=dispatch.agent_name)
        return dispatch

    def room_opened(self, room: AgentRoom, token_agents: list[pb_dispatch.RoomAgentDispatch]) -> None:
        """A room was just created by a join whose token asked for ``token_agents`` (maybe none).

        As on LiveKit, a room whose creator asked for no agent gets the
        automatic dispatch when an unnamed worker is registered.
        """
        self._room_sids[room.name] = room.sid
        for wanted in token_agents:
            try:
                self.create_dispatch(
                    room.name,
                    wanted.agent_name,
                    metadata=wanted.metadata,
                    attributes=dict(wanted.attributes),
                    restart_policy=wanted.restart_policy,
                )
            except DispatchLimitError as exc:
                log_event("refused", logging.WARNING, room=room.name, request="roomConfig.agents", reason=str(exc))
        if not token_agents and any(not w.agent_name for w in self.workers.values()):
            self.create_dispatch(room.name, "")
        for dispatch in self.room_dispatches(room.name):
            self._ensure_jobs(dispatch)

    # ----- rooms -----

    def observe(self) -> None:
        """Catch up with the rooms: closed rooms end their dispatches, new publishers and participants get jobs."""
        rooms = self._rooms()
        for name, sid in list(self._room_sids.items()):
            room = rooms.get(name)
            if room is None or room.sid != sid:
                del self._room_sids[name]
                self._room_closed(name, sid)
        for name, room in list(rooms.items()):
            if name not in self._room_sids:
                # opened without a join (CreateRoom): it gets the automatic dispatch like any new room
                self.room_opened(room, [])
        for dispatch in list(self.dispatches.values()):
            self._ensure_jobs(dispatch)

    def _room_closed(self, name: str, sid: str) -> None:
        for dispatch in list(self.dispatches.values()):
            if dispatch.room == name and dispatch.room_sid == sid:
                self.dispatches.pop(dispatch.id, None)
                self._end_jobs(dispatch, pb_agent.JSR_ROOM_CLOSED, "room closed")
                log_event("dispatch_ended", room=name, dispatch=dispatch.id, reason="room closed")

    def _open_room(self, name: str) -> AgentRoom | None:
        room = self._rooms().get(name)
        if room is None or self._room_sids.get(name) != room.sid:
            return None
        return room

    # ----- jobs -----

    def _job(self, job_id: str) -> JobRecord | None:
        for dispatch in self.dispatches.values():
            for record in dispatch.jobs:
                if record.id == job_id:
                    return record
        return None

    def _job_type(self, agent_name: str) -> int | None:
        """The job type the workers of ``agent_name`` registered with (the first one's), None without workers."""
        for worker in self.workers.values():
            if worker.agent_name == agent_name:
                return worker.job_type
        return None

    def _ensure_jobs(self, dispatch: DispatchRecord) -> None:
        """Start the jobs ``dispatch`` lacks in its open room; end those whose participant left."""
        if dispatch.deleted_at or dispatch.id not in self.dispatches:
            return
        room = self._open_room(dispatch.room)
        if room is None:
            return
        if not dispatch.room_sid:
            dispatch.room_sid = room.sid
        if dispatch.room_sid != room.sid:
            return
        job_type = self._job_type(dispatch.agent_name)
        if job_type is None:
            return
        if job_type == pb_agent.JT_ROOM:
            targets: dict[str, AgentMember | None] = {"": None}
        else:
            targets = {
                identity: member
                for identity, member in room.participants.items()
                if (job_type == pb_agent.JT_PARTICIPANT or member.published) and not _is_agent(member)
            }
        for record in dispatch.jobs:
            if record.target and record.target not in targets and not record.ended:
                # the participant this job is for left
                self._end(record, pb_agent.JS_SUCCESS, "participant left", pb_agent.JSR_UNSPECIFIED)
        for target, member in targets.items():
            if target in dispatch.done or dispatch.live_job(target) is not None:
                continue
            self._start_job(dispatch, room, job_type, target, member)

    def _start_job(
        self, dispatch: DispatchRecord, room: AgentRoom, job_type: int, target: str, member: AgentMember | None
    ) -> None:
        job = pb_agent.Job()
        job.id = new_id(JOB_PREFIX)
        job.dispatch_id = dispatch.id
        job.type = job_type  # type: ignore[assignment]
        job.room.CopyFrom(room.info())
        if member is not None:
            job.participant.CopyFrom(member.info())
        job.agent_name = dispatch.agent_name
        job.metadata = dispatch.metadata
        job.attributes.update(dispatch.attributes)
        record = JobRecord(job=job, dispatch=dispatch, target=target)
        record.set_status(pb_agent.JS_PENDING)
        dispatch.add_job(record)
        self._log_job("job_created", record, job_type=pb_agent.JobType.Name(job_type), participant=target)
        self._place(record)

    def _place(self, record: JobRecord) -> None:
        record.waiting = False
        task = asyncio.get_running_loop().create_task(self._offer(record))
        record.placing = task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("placing a job failed", exc_info=task.exception())

    def _candidate(self, record: JobRecord) -> Worker | None:
        candidates = [
            worker
            for worker in self.workers.values()
            if worker.available
            and worker.agent_name == record.job.agent_name
            and worker.job_type == record.job.type
            and worker.id not in record.tried
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda w: (w.load, self._assigned(w)))

    def _assigned(self, worker: Worker) -> int:
        return sum(1 for d in self.dispatches.values() for r in d.jobs if r.worker is worker and not r.ended)

    async def _offer(self, record: JobRecord) -> None:
        """Offer the job to one worker after another until one takes it or none is left to ask."""
        while not record.ended:
            worker = self._candidate(record)
            if worker is None:
                record.waiting = True
                self._log_job("job_waiting", record, reason="no available worker")
                return
            record.tried.add(worker.id)
            answer = await worker.ask(record.job, self.availability_timeout)
            if record.ended:
                return
            if answer is None or not answer.available:
                self._log_job("job_declined", record, worker=worker.id, answered=answer is not None)
                if answer is not None and answer.terminate:
                    self._end(record, pb_agent.JS_FAILED, "worker declined and asked to terminate")
                    record.dispatch.done.add(record.target)
                    return
                continue
            room = self._open_room(record.dispatch.room)
            if room is None or room.sid != record.dispatch.room_sid:
                # The worker drops the job itself when no assignment comes (after 7.5 s).
                self._end(record, pb_agent.JS_FAILED, "room closed", pb_agent.JSR_ROOM_CLOSED)
                return
            self._assign(record, worker, answer)
            return

    def _assign(self, record: JobRecord, worker: Worker, answer: pb_agent.AvailabilityResponse) -> None:
        identity = answer.participant_identity or f"agent-{record.id}"
        attributes = dict(record.dispatch.attributes)
        attributes.update(answer.participant_attributes)
        token = job_token(
            api_key=worker.api_key,
            api_secret=self._keys[worker.api_key],
            room=record.dispatch.room,
            identity=identity,
            name=answer.participant_name,
            metadata=answer.participant_metadata,
            attributes=attributes,
            permissions=worker.permissions,
        )
        record.worker = worker
        state = record.job.state
        state.participant_identity = identity
        state.worker_id = worker.id
        record.set_status(pb_agent.JS_RUNNING)
        worker.assign(record.job, token)
        self._log_job("job_assigned", record, worker=worker.id, identity=identity)

    def _end(
        self,
        record: JobRecord,
        status: pb_agent.JobStatus,
        why: str,
        reason: pb_agent.JobStateReason = pb_agent.JSR_UNSPECIFIED,
    ) -> None:
        if record.ended:
            return
        record.set_status(status, error=why if status == pb_agent.JS_FAILED else "", reason=reason)
        if record.worker is not None:
            record.worker.terminate(record.id)
        self._log_job("job_ended", record, status=pb_agent.JobStatus.Name(status), reason=why)

    def _end_jobs(self, dispatch: DispatchRecord, reason: pb_agent.JobStateReason, why: str) -> None:
        """End the jobs of a dispatch that is going away, and remember their ids for late reports."""
        for record in dispatch.jobs:
            self._end(record, pb_agent.JS_CANCELLED, why, reason)
            self._forgotten_jobs[record.id] = None
        while len(self._forgotten_jobs) > MAX_FORGOTTEN_JOBS:
            self._forgotten_jobs.popitem(last=False)

    def _retry_waiting(self, agent_name: str) -> None:
        for dispatch in list(self.dispatches.values()):
            for record in dispatch.jobs:
                if record.waiting and not record.ended and record.job.agent_name == agent_name:
                    record.tried.clear()
                    self._place(record)

    def _remove_agent(self, room_name: str, identity: str) -> None:
        room = self._open_room(room_name)
        member = room.participants.get(identity) if room is not None and identity else None
        if member is None or not _is_agent(member):
            return
        task = asyncio.get_running_loop().create_task(
            member.close("the agent's worker disconnected", pb_models.PARTICIPANT_REMOVED)
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _log_job(self, event: str, record: JobRecord, **fields: Any) -> None:
        log_event(
            event,
            room=record.dispatch.room,
            dispatch=record.dispatch.id,
            job=record.id,
            agent_name=record.job.agent_name,
            **fields,
        )

    async def close(self) -> None:
        """Stop placing jobs (the server is stopping; workers' sockets are closed by it)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
