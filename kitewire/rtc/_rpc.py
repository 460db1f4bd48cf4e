"""LiveKit's RPC protocol on reliable data packets, for one local participant.

A call is an ``RpcRequest`` (id, method, payload, the caller's timeout,
version 1) addressed to one identity. The callee answers at once with an
``RpcAck`` and, when its handler returns, an ``RpcResponse`` carrying a payload
or an ``RpcError``. The caller fails with ``CONNECTION_TIMEOUT`` when no ack
comes within the round-trip allowance and with ``RESPONSE_TIMEOUT`` when no
response comes within its timeout.

Bounded both ways: at most :data:`MAX_PENDING_CALLS` outgoing calls wait at
once, and at most :data:`MAX_RUNNING_HANDLERS` incoming calls run at once (a
flood beyond that is answered with an error, never queued).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol import models

from .rpc import (
    RpcCallInfo,
    RpcError,
    RpcInterceptor,
    RpcInvocationData,
    chain_incoming,
    chain_outgoing,
)

__all__ = [
    "DEFAULT_MAX_ROUND_TRIP_LATENCY",
    "DEFAULT_RESPONSE_TIMEOUT",
    "MAX_PAYLOAD_BYTES",
    "MAX_PENDING_CALLS",
    "MAX_RUNNING_HANDLERS",
    "RpcEndpoint",
    "RpcHandler",
]

logger = logging.getLogger("kitewire.rtc")

#: Largest request or response payload in UTF-8 bytes (livekit's limit).
MAX_PAYLOAD_BYTES = 15_360
DEFAULT_RESPONSE_TIMEOUT = 15.0
DEFAULT_MAX_ROUND_TRIP_LATENCY = 7.0
#: Seconds a handler gets at least (a shorter response_timeout is raised to the round trip plus this).
MIN_HANDLER_TIME = 1.0
#: Outgoing calls waiting for their response at once.
MAX_PENDING_CALLS = 256
#: Incoming calls whose handlers run at once; more are refused with APPLICATION_ERROR.
MAX_RUNNING_HANDLERS = 64
RPC_VERSION = 1

RpcHandler = Callable[[RpcInvocationData], Awaitable[str | None] | str | None]
SendPacket = Callable[[models.DataPacket], Coroutine[Any, Any, None]]

_Code = RpcError.ErrorCode


@dataclass
class _PendingCall:
    destination: str
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    response: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class RpcEndpoint:
    """One local participant's RPC: handlers it serves and calls it waits on.

    ``send`` publishes a reliable DataPacket; ``server_supports_rpc`` says whether
    the server relays RPC (livekit's SDKs require server 1.8.0).
    """

    def __init__(self, send: SendPacket, server_supports_rpc: Callable[[], bool]) -> None:
        self._send = send
        self._server_supports_rpc = server_supports_rpc
        self.handlers: dict[str, RpcHandler] = {}
        self.interceptors: list[RpcInterceptor] = []
        self._pending: dict[str, _PendingCall] = {}
        self._running: dict[str, tuple[asyncio.Task[None], RpcInvocationData]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- calling -------------------------------------------------------------------

    async def perform(self, call: RpcCallInfo) -> str:
        """Run ``call`` through the interceptors and over the wire; raises RpcError."""
        return await chain_outgoing(list(self.interceptors), self._call)(call)

    async def _call(self, call: RpcCallInfo) -> str:
        response_timeout = DEFAULT_RESPONSE_TIMEOUT if call.response_timeout is None else call.response_timeout
        round_trip = call.max_round_trip_latency or DEFAULT_MAX_ROUND_TRIP_LATENCY
        for name in ("destination_identity", "method", "payload"):
            if not isinstance(getattr(call, name), str):
                raise ValueError(f"{name}: expected str, got {type(getattr(call, name)).__name__}")
        if response_timeout <= 0:
            raise ValueError(f"response_timeout: expected a positive number of seconds, got {response_timeout}")
        if len(call.payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise RpcError._built_in(_Code.REQUEST_PAYLOAD_TOO_LARGE)
        if not self._server_supports_rpc():
            raise RpcError._built_in(_Code.UNSUPPORTED_SERVER)
        if len(self._pending) >= MAX_PENDING_CALLS:
            raise RpcError(_Code.SEND_FAILED, f"at most {MAX_PENDING_CALLS} RPC calls may wait for a response at once")
        request_id = str(uuid.uuid4())
        packet = models.DataPacket()
        packet.kind = models.DataPacket.RELIABLE
        packet.destination_identities.append(call.destination_identity)
        request = packet.rpc_request
        request.id = request_id
        request.method = call.method
        request.payload = call.payload
        # as livekit's SDKs: the whole call gets at least the round trip plus a second, and
        # the callee is told what is left of it after the round trip allowance
        effective = max(response_timeout, round_trip + MIN_HANDLER_TIME)
        request.response_timeout_ms = int((effective - round_trip) * 1000)
        request.version = RPC_VERSION
        pending = _PendingCall(call.destination_identity)
        self._pending[request_id] = pending
        try:
            try:
                await self._send(packet)
            except Exception as exc:
                raise RpcError(_Code.SEND_FAILED, f"{RpcError.ErrorMessage[_Code.SEND_FAILED]}: {exc}") from None
            return await self._await_answer(pending, round_trip, effective)
        finally:
            self._pending.pop(request_id, None)

    @staticmethod
    async def _await_answer(pending: _PendingCall, round_trip: float, response_timeout: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + response_timeout
        acked: asyncio.Future[Any] = asyncio.ensure_future(pending.acked.wait())
        answered: asyncio.Future[Any] = pending.response
        try:
            done, _ = await asyncio.wait({acked, answered}, timeout=min(round_trip, response_timeout))
            if not done:
                raise RpcError._built_in(_Code.CONNECTION_TIMEOUT)
        finally:
            acked.cancel()
        try:
            return await asyncio.wait_for(asyncio.shield(pending.response), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            raise RpcError._built_in(_Code.RESPONSE_TIMEOUT) from None

    # -- packets ---------------------------------------------------------------------

    def on_packet(self, packet: models.DataPacket) -> None:
        """An rpc_request, rpc_ack or rpc_response from ``packet.participant_identity``."""
        kind = packet.WhichOneof("value")
        if kind == "rpc_request":
            self._on_request(packet.participant_identity, packet.rpc_request)
        elif kind == "rpc_ack":
            pending = self._pending.get(packet.rpc_ack.request_id)
            if pending is not None:
                pending.acked.set()
        elif kind == "rpc_response":
            self._on_response(packet.rpc_response)

    def _on_response(self, response: models.RpcResponse) -> None:
        pending = self._pending.get(response.request_id)
        if pending is None or pending.response.done():
            logger.debug("RPC response for a call not waiting (%s) ignored", response.request_id)
            return
        pending.acked.set()
        if response.WhichOneof("value") == "error":
            pending.response.set_exception(RpcError._from_proto(response.error))
        else:
            pending.response.set_result(response.payload)

    def _on_request(self, caller: str, request: models.RpcRequest) -> None:
        self._spawn(self._reply(caller, ack=request.id))
        if request.version != RPC_VERSION:
            self._spawn(self._reply(caller, response=request.id, error=RpcError._built_in(_Code.UNSUPPORTED_VERSION)))
            return
        if request.id in self._running:
            return  # the same call twice: the first one answers
        if len(self._running) >= MAX_RUNNING_HANDLERS:
            error = RpcError(_Code.APPLICATION_ERROR, f"at most {MAX_RUNNING_HANDLERS} RPC calls are handled at once")
            self._spawn(self._reply(caller, response=request.id, error=error))
            return
        invocation = RpcInvocationData(
            request_id=request.id,
            caller_identity=caller,
            payload=request.payload,
            response_timeout=request.response_timeout_ms / 1000 or DEFAULT_RESPONSE_TIMEOUT,
            method=request.method,
        )
        task = asyncio.get_running_loop().create_task(self._handle(caller, invocation))
        self._running[request.id] = (task, invocation)
        task.add_done_callback(lambda _: self._running.pop(request.id, None))

    async def _handle(self, caller: str, invocation: RpcInvocationData) -> None:
        chain = chain_incoming(list(self.interceptors), self._invoke_handler)
        payload: str | None = None
        error: RpcError | None = None
        try:
            payload = await asyncio.wait_for(chain(invocation), invocation.response_timeout)
        except TimeoutError:
            invocation.cancel_reason = _Code.RESPONSE_TIMEOUT
            error = RpcError._built_in(_Code.RESPONSE_TIMEOUT)
        except RpcError as exc:
            error = exc
        except asyncio.CancelledError:
            if invocation.cancel_reason is not None:
                raise  # the room went away: nobody to answer
            error = RpcError._built_in(_Code.APPLICATION_ERROR)
        except Exception:
            logger.exception("RPC handler for %r raised", invocation.method)
            error = RpcError._built_in(_Code.APPLICATION_ERROR)
        if error is None and payload is not None and len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            error = RpcError._built_in(_Code.RESPONSE_PAYLOAD_TOO_LARGE)
        await self._reply(caller, response=invocation.request_id, payload=payload or "", error=error)

    async def _invoke_handler(self, invocation: RpcInvocationData) -> str | None:
        handler = self.handlers.get(invocation.method)
        if handler is None:
            raise RpcError._built_in(_Code.UNSUPPORTED_METHOD)
        result = handler(invocation)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, str):
            raise RpcError(_Code.APPLICATION_ERROR, f"handler returned {type(result).__name__}, expected str")
        return result

    async def _reply(
        self,
        caller: str,
        *,
        ack: str = "",
        response: str = "",
        payload: str = "",
        error: RpcError | None = None,
    ) -> None:
        packet = models.DataPacket()
        packet.kind = models.DataPacket.RELIABLE
        packet.destination_identities.append(caller)
        if ack:
            packet.rpc_ack.request_id = ack
        else:
            packet.rpc_response.request_id = response
            if error is not None:
                packet.rpc_response.error.CopyFrom(error._to_proto())
            else:
                packet.rpc_response.payload = payload
        try:
            await self._send(packet)
        except Exception as exc:
            logger.warning("could not answer RPC call %s of %s: %s", ack or response, caller, exc)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- participants leaving ------------------------------------------------------------

    def participant_left(self, identity: str) -> None:
        """Calls waiting on ``identity`` fail with RECIPIENT_DISCONNECTED."""
        for pending in self._pending.values():
            if pending.destination == identity and not pending.response.done():
                pending.response.set_exception(RpcError._built_in(_Code.RECIPIENT_DISCONNECTED))

    def close(self) -> None:
        """The room disconnected: waiting calls fail, running handlers are cancelled."""
        for pending in self._pending.values():
            if not pending.response.done():
                pending.response.set_exception(RpcError._built_in(_Code.RECIPIENT_DISCONNECTED))
        for task, invocation in list(self._running.values()):
            invocation.cancel_reason = _Code.RECIPIENT_DISCONNECTED
            task.cancel()
        for task in list(self._tasks):
            task.cancel()
