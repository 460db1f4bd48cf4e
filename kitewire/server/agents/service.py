"""The agent side of one server: the ``/agent`` worker endpoint, the dispatcher, AgentDispatchService."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol import agent as pb_agent
from livekit.protocol import agent_dispatch as pb_dispatch

from kitewire.signal.connection import MAX_SIGNAL_MESSAGE_BYTES, PeerCheckedConnection, server_websocket
from kitewire.signal.token import TokenError, verify_token

from ..events import log_event
from .dispatch_service import AgentDispatchService, DispatchError
from .dispatcher import Dispatcher
from .records import AgentRoom
from .tokens import verify_worker_token
from .worker import REGISTER_TIMEOUT_SECONDS, Worker

__all__ = ["AgentService"]

logger = logging.getLogger("kitewire.server.agents")

_TWIRP_PREFIX = "/twirp/livekit.AgentDispatchService/"

_REQUEST_TYPES: dict[str, type[Message]] = {
    "CreateDispatch": pb_dispatch.CreateAgentDispatchRequest,
    "DeleteDispatch": pb_dispatch.DeleteAgentDispatchRequest,
    "ListDispatch": pb_dispatch.ListAgentDispatchRequest,
}

# Twirp error code -> HTTP status (the Twirp specification's table).
_TWIRP_STATUS = {
    "invalid_argument": 400,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "bad_route": 404,
    "resource_exhausted": 429,
    "internal": 500,
}


class AgentService:
    """Workers, dispatch and the dispatch API of one server.

    The server mounts :meth:`handle_agent` on ``/agent``, calls
    :meth:`room_opened` when a join creates a room and :meth:`observe` on
    every tick.
    """

    def __init__(
        self,
        rooms: Callable[[], Mapping[str, AgentRoom]],
        keys: Mapping[str, str],
        *,
        node_id: str,
        server_version: str,
    ) -> None:
        self.keys = keys
        self.node_id = node_id
        self.server_version = server_version
        self.dispatcher = Dispatcher(rooms, keys)
        self.dispatch_service = AgentDispatchService(self.dispatcher)
        self._workers: set[asyncio.Task[Any]] = set()
        #: Seconds a new worker has to send its register message (livekit-server's 10).
        self.register_timeout = REGISTER_TIMEOUT_SECONDS

    def room_opened(self, room: AgentRoom, agents: Sequence[pb_dispatch.RoomAgentDispatch]) -> None:
        """A join created ``room`` with a token whose roomConfig asks for ``agents`` (maybe none).

        Those agents are dispatched, or the automatic one when the list is empty.
        """
        self.dispatcher.room_opened(room, list(agents))

    def observe(self) -> None:
        """Let the dispatcher catch up with the rooms (called on the server's tick)."""
        try:
            self.dispatcher.observe()
        except Exception:
            logger.exception("agent dispatch failed to observe the rooms")

    async def close(self) -> None:
        """Disconnect every worker and stop dispatching."""
        for task in list(self._workers):
            task.cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        await self.dispatcher.close()

    # ----- /agent -----

    async def handle_agent(self, request: web.Request) -> web.StreamResponse:
        """The worker protocol: Bearer token with the agent grant, then WorkerMessage/ServerMessage frames."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        try:
            claims = verify_worker_token(token, self.keys)
        except TokenError as exc:
            return self._refuse(request, 401, exc.reason)
        if self.dispatcher.full:
            return self._refuse(request, 503, "too many workers registered on this server")
        ws = server_websocket()
        if not ws.can_prepare(request).ok:
            return self._refuse(request, 400, "expected a WebSocket upgrade request")
        await ws.prepare(request)
        connection = PeerCheckedConnection[pb_agent.WorkerMessage, pb_agent.ServerMessage](ws, pb_agent.WorkerMessage)
        worker = Worker(
            connection,
            self.dispatcher,
            api_key=claims.api_key,
            node_id=self.node_id,
            server_version=self.server_version,
            join_url=f"ws://{request.host}",
            register_timeout=self.register_timeout,
        )
        task = asyncio.current_task()
        if task is not None:
            self._workers.add(task)
        try:
            await worker.run()
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._workers.discard(task)
        return ws

    def _refuse(self, request: web.Request, status: int, reason: str) -> web.Response:
        log_event(
            "refused", logging.WARNING, path=request.path, status=status, reason=reason, peer=request.remote or ""
        )
        return web.Response(status=status, text=reason)

    # ----- Twirp -----
    # FOR THE LEAD: a minimal Twirp route for AgentDispatchService only, because the
    # shared Twirp layer (server/twirp*.py) was not on main when this was written.
    # Re-home it there: server.twirp.add_service(AgentDispatchService's descriptor,
    # server.agents.dispatch_service.handlers()) with DispatchError answered by its code.

    async def handle_twirp(self, request: web.Request) -> web.Response:
        """``POST /twirp/livekit.AgentDispatchService/<Method>`` with a protobuf or JSON body."""
        method = request.path[len(_TWIRP_PREFIX) :]
        handlers = self.dispatch_service.handlers()
        if method not in handlers:
            return _twirp_error("bad_route", f"no method {method!r} in livekit.AgentDispatchService")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token:
            return _twirp_error("unauthenticated", "missing access token (Authorization: Bearer)")
        try:
            claims = verify_token(token, self.keys)
        except TokenError as exc:
            return _twirp_error("unauthenticated", exc.reason)
        message_type = _REQUEST_TYPES[method]
        body = await request.content.read(MAX_SIGNAL_MESSAGE_BYTES + 1)
        if len(body) > MAX_SIGNAL_MESSAGE_BYTES:
            return _twirp_error("malformed", f"expected a body of at most {MAX_SIGNAL_MESSAGE_BYTES} bytes")
        json_body = request.content_type == "application/json"
        message = message_type()
        try:
            if json_body:
                json_format.Parse(body.decode() or "{}", message, ignore_unknown_fields=True)
            else:
                message.ParseFromString(body)
        except Exception as exc:
            return _twirp_error("malformed", f"expected a {message_type.__name__}, got an unparsable body ({exc})")
        try:
            response = await handlers[method](message, claims)
        except DispatchError as exc:
            return _twirp_error(exc.code, exc.message)
        if json_body:
            return web.Response(text=json_format.MessageToJson(response), content_type="application/json")
        return web.Response(body=response.SerializeToString(), content_type="application/protobuf")


def _twirp_error(code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message}, status=_TWIRP_STATUS.get(code, 500))
