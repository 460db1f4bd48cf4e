"""The agent side of one server: the ``/agent`` worker endpoint, the dispatcher, AgentDispatchService."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from livekit.protocol import agent as pb_agent
from livekit.protocol import agent_dispatch as pb_dispatch

from kitewire.signal.connection import PeerCheckedConnection, server_websocket
from kitewire.signal.token import TokenError

from ..events import log_event
from .dispatch_service import AgentDispatchService
from .dispatcher import Dispatcher
from .records import AgentRoom
from .tokens import verify_worker_token
from .worker import REGISTER_TIMEOUT_SECONDS, Worker

__all__ = ["AgentService"]

logger = logging.getLogger("kitewire.server.agents")


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
    ) -> None:
        self.keys = keys
        self.node_id = node_id
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
