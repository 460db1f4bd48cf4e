"""One connected agent worker: its registration, status and load, and the availability questions put to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from livekit.protocol import agent as pb_agent
from livekit.protocol import models as pb_models

from kitewire.signal.connection import PeerCheckedConnection, SignalProtocolError

from ..events import log_event
from ..ids import new_id
from ..version import fill_server_info

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

__all__ = ["WORKER_PREFIX", "Worker", "WorkerConnection"]

logger = logging.getLogger("kitewire.server.agents")

WORKER_PREFIX = "AW_"
#: livekit-server's deadline for a worker's register message after the socket opens.
REGISTER_TIMEOUT_SECONDS = 10.0
#: livekit-server's deadline for an availability answer before the job goes to the next worker.
AVAILABILITY_TIMEOUT_SECONDS = 10.0
# Questions one worker may have open at once; more jobs wait for the next worker or a later offer.
MAX_OPEN_QUESTIONS = 64
# Names and namespaces a worker registers with (LiveKit has none; identifiers need no more).
MAX_NAME_CHARS = 256

WorkerConnection = PeerCheckedConnection[pb_agent.WorkerMessage, pb_agent.ServerMessage]


class Worker:
    """A worker on ``/agent``: registered once, then asked about jobs by the dispatcher.

    ``run()`` reads the socket until it closes. The first message the server
    sends is always the register response; messages before a register (or a
    second register) are logged and skipped, never answered with anything else.
    """

    def __init__(
        self,
        connection: WorkerConnection,
        dispatcher: Dispatcher,
        *,
        api_key: str,
        node_id: str,
        join_url: str,
        register_timeout: float = REGISTER_TIMEOUT_SECONDS,
    ) -> None:
        self.connection = connection
        self.dispatcher = dispatcher
        self.api_key = api_key
        self.node_id = node_id
        self.join_url = join_url
        self.register_timeout = register_timeout
        self.id = ""
        self.agent_name = ""
        self.namespace = ""
        self.version = ""
        self.job_type: pb_agent.JobType = pb_agent.JT_ROOM
        self.permissions = pb_models.ParticipantPermission()
        self.status: pb_agent.WorkerStatus = pb_agent.WS_AVAILABLE
        self.load = 0.0
        self.registered_at = 0.0
        self.closed = False
        # job id -> the answer awaited; None is set when the worker leaves without answering
        self._questions: dict[str, asyncio.Future[pb_agent.AvailabilityResponse | None]] = {}

    @property
    def registered(self) -> bool:
        """True once the register response went out."""
        return bool(self.id)

    @property
    def available(self) -> bool:
        """Whether this worker may be offered a new job (registered, open, not full)."""
        return (
            self.registered
            and not self.closed
            and self.status == pb_agent.WS_AVAILABLE
            and len(self._questions) < MAX_OPEN_QUESTIONS
        )

    def _log(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(event, level, worker=self.id or "unregistered", agent_name=self.agent_name, **fields)

    def send(self, message: pb_agent.ServerMessage) -> bool:
        """Queue one ServerMessage; False when the connection is gone."""
        if self.closed:
            return False
        return self.connection.post(message)

    # ----- the socket -----

    async def run(self) -> None:
        """Serve the worker until its socket closes; the dispatcher then ends its jobs."""
        try:
            if await self._await_register():
                await self._serve()
        finally:
            self.closed = True
            for future in self._questions.values():
                if not future.done():
                    future.set_result(None)
            self._questions.clear()
            if self.registered:
                self.dispatcher.worker_left(self)
            await self.connection.close("worker connection ended")
            self._log("worker_disconnected", reason=self.connection.failure or "closed")

    async def _await_register(self) -> bool:
        deadline = time.monotonic() + self.register_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._log("refused", logging.WARNING, reason=f"no register within {self.register_timeout:g} s")
                return False
            message = await self._receive(remaining)
            if message is None:
                return False
            if message.WhichOneof("message") == "register":
                return self._register(message.register)
            self._log(
                "worker_message_ignored",
                logging.WARNING,
                message=message.WhichOneof("message") or "empty",
                reason="before register",
            )

    async def _receive(self, timeout: float | None) -> pb_agent.WorkerMessage | None:
        while True:
            try:
                return await self.connection.receive(timeout)
            except SignalProtocolError as exc:
                # A frame that does not parse costs the worker that frame only.
                self._log("worker_message_ignored", logging.WARNING, reason=str(exc))
            except TimeoutError:
                return None

    def _register(self, request: pb_agent.RegisterWorkerRequest) -> bool:
        if len(request.agent_name) > MAX_NAME_CHARS or len(request.namespace) > MAX_NAME_CHARS:
            self._log("refused", logging.WARNING, reason=f"agent name or namespace over {MAX_NAME_CHARS} characters")
            return False
        self.id = new_id(WORKER_PREFIX)
        self.agent_name = request.agent_name
        self.namespace = request.namespace
        self.version = request.version
        self.job_type = request.type
        self.permissions.CopyFrom(request.allowed_permissions)
        self.registered_at = time.time()
        response = pb_agent.ServerMessage()
        response.register.worker_id = self.id
        fill_server_info(response.register.server_info, self.node_id)
        self.send(response)
        self._log(
            "worker_registered",
            job_type=pb_agent.JobType.Name(self.job_type) if self.job_type in pb_agent.JobType.values() else "unknown",
            namespace=self.namespace,
            version=self.version,
        )
        self.dispatcher.worker_joined(self)
        return True

    async def _serve(self) -> None:
        while True:
            message = await self._receive(None)
            if message is None:
                return
            try:
                self._handle(message)
            except ValueError as exc:
                self._log("worker_message_ignored", logging.WARNING, reason=str(exc))

    def _handle(self, message: pb_agent.WorkerMessage) -> None:
        kind = message.WhichOneof("message")
        if kind == "availability":
            self._answer(message.availability)
        elif kind == "update_worker":
            self._update_status(message.update_worker)
        elif kind == "update_job":
            self.dispatcher.job_status(self, message.update_job)
        elif kind == "ping":
            pong = pb_agent.ServerMessage()
            pong.pong.last_timestamp = message.ping.timestamp
            pong.pong.timestamp = int(time.time() * 1000)
            self.send(pong)
        else:
            # register again, migrate_job, simulate_job, or a message newer than this protocol
            self._log("worker_message_ignored", logging.DEBUG, message=kind or "empty")

    def _update_status(self, update: pb_agent.UpdateWorkerStatus) -> None:
        was_available = self.available
        if update.HasField("status"):
            if update.status not in pb_agent.WorkerStatus.values():
                raise ValueError(f"expected a WorkerStatus, got {update.status}")
            self.status = update.status
        if not update.load >= 0.0 or update.load != update.load:
            raise ValueError(f"expected a load >= 0, got {update.load}")
        self.load = update.load
        if self.available and not was_available:
            self._log("worker_available", load=f"{self.load:.2f}")
            self.dispatcher.worker_available(self)
        elif was_available and not self.available:
            self._log("worker_full", load=f"{self.load:.2f}")

    # ----- availability -----

    async def ask(
        self, job: pb_agent.Job, timeout: float = AVAILABILITY_TIMEOUT_SECONDS
    ) -> pb_agent.AvailabilityResponse | None:
        """Offer ``job``; the worker's answer, or None when it did not answer within ``timeout`` or left."""
        if not self.available or job.id in self._questions:
            return None
        future: asyncio.Future[pb_agent.AvailabilityResponse | None] = asyncio.get_running_loop().create_future()
        self._questions[job.id] = future
        request = pb_agent.ServerMessage()
        request.availability.job.CopyFrom(job)
        try:
            if not self.send(request):
                return None
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(future, timeout)
            self._log("availability_timeout", level=logging.WARNING, job=job.id, timeout=f"{timeout:g}")
            return None
        finally:
            self._questions.pop(job.id, None)

    def _answer(self, answer: pb_agent.AvailabilityResponse) -> None:
        future = self._questions.get(answer.job_id)
        if future is None or future.done():
            raise ValueError(f"availability answer for job {answer.job_id!r}, which was not offered to this worker")
        future.set_result(answer)

    def assign(self, job: pb_agent.Job, token: str) -> bool:
        """Send the job's assignment: where to join and with which token."""
        message = pb_agent.ServerMessage()
        message.assignment.job.CopyFrom(job)
        message.assignment.url = self.join_url
        message.assignment.token = token
        return self.send(message)

    def terminate(self, job_id: str) -> bool:
        """Tell the worker to end ``job_id``."""
        message = pb_agent.ServerMessage()
        message.termination.job_id = job_id
        return self.send(message)
