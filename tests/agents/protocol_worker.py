"""A worker speaking the /agent protocol by hand, for the protocol tests (the real livekit-agents runs elsewhere)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import jwt
from livekit import api
from livekit.protocol import agent as pb_agent

KEY = "devkey"
SECRET = "secret"


def worker_token(*, agent: bool = True, key: str = KEY, secret: str = SECRET) -> str:
    """A worker token as livekit-agents makes it (livekit-api, the agent grant)."""
    return api.AccessToken(key, secret).with_grants(api.VideoGrants(agent=agent)).to_jwt()


def admin_token(room: str) -> str:
    """A server-API token for ``room`` as livekit-api's AgentDispatchService signs it."""
    return api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_admin=True, room=room)).to_jwt()


def decode(token: str) -> dict[str, Any]:
    """A job token's claims (checked against the dev secret)."""
    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"])
    return claims


class ProtocolWorker:
    """One /agent connection; ``register()`` then ``next(kind)`` for what the server sends."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.worker_id = ""

    @classmethod
    async def connect(cls, url: str, token: str | None = None) -> ProtocolWorker:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(
                url.rstrip("/") + "/agent", headers={"Authorization": f"Bearer {token or worker_token()}"}
            )
        except BaseException:
            await session.close()
            raise
        return cls(session, ws)

    async def send(self, message: pb_agent.WorkerMessage) -> None:
        await self.ws.send_bytes(message.SerializeToString())

    async def register(
        self,
        agent_name: str = "",
        job_type: pb_agent.JobType = pb_agent.JT_ROOM,
        *,
        can_publish: bool = True,
    ) -> pb_agent.RegisterWorkerResponse:
        message = pb_agent.WorkerMessage()
        message.register.agent_name = agent_name
        message.register.type = job_type
        permissions = message.register.allowed_permissions
        permissions.can_publish = can_publish
        permissions.can_subscribe = True
        permissions.can_publish_data = True
        permissions.can_update_metadata = True
        permissions.agent = True
        await self.send(message)
        response = await self.next()
        assert response.WhichOneof("message") == "register", response
        self.worker_id = response.register.worker_id
        return response.register

    async def next(self, kind: str | None = None, timeout: float = 10.0) -> pb_agent.ServerMessage:
        """The next ServerMessage (of ``kind``, skipping others)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.ws.receive(timeout=max(0.01, deadline - loop.time()))
            assert frame.type == aiohttp.WSMsgType.BINARY, f"expected a binary frame, got {frame.type}"
            message = pb_agent.ServerMessage()
            message.ParseFromString(frame.data)
            if kind is None or message.WhichOneof("message") == kind:
                return message

    async def answer(
        self,
        job: pb_agent.Job,
        *,
        available: bool = True,
        identity: str = "",
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        message = pb_agent.WorkerMessage()
        message.availability.job_id = job.id
        message.availability.available = available
        message.availability.participant_identity = identity
        message.availability.participant_name = identity
        message.availability.participant_attributes.update(attributes or {})
        await self.send(message)

    async def status(self, status: pb_agent.WorkerStatus, load: float = 0.0) -> None:
        message = pb_agent.WorkerMessage()
        message.update_worker.status = status
        message.update_worker.load = load
        await self.send(message)

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
