"""RPC between participants: the public types (livekit.rtc.rpc's names and codes).

A participant registers handlers by method name
(:meth:`LocalParticipant.register_rpc_method`); another calls them with
:meth:`LocalParticipant.perform_rpc`. The wire protocol (request, ack and
response data packets) is in :mod:`kitewire.rtc._rpc`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from livekit.protocol import models

__all__ = [
    "IncomingRpcNext",
    "OutgoingRpcNext",
    "RpcCallInfo",
    "RpcError",
    "RpcInterceptor",
    "RpcInvocationData",
]

# Longest error message and data carried on the wire (longer ones are cut, as livekit's SDKs do).
MAX_MESSAGE_BYTES = 256
MAX_DATA_BYTES = 15_360


class RpcError(Exception):
    """An RPC failed: raised by :meth:`LocalParticipant.perform_rpc`, and raised by a
    handler to send ``code``, ``message`` and ``data`` back to the caller.

    Codes 1001-1999 are reserved for the built-in errors in :class:`ErrorCode`;
    applications may use any other code.
    """

    class ErrorCode(enum.IntEnum):
        """The built-in error codes (livekit's values)."""

        APPLICATION_ERROR = 1500
        CONNECTION_TIMEOUT = 1501
        RESPONSE_TIMEOUT = 1502
        RECIPIENT_DISCONNECTED = 1503
        RESPONSE_PAYLOAD_TOO_LARGE = 1504
        SEND_FAILED = 1505
        UNSUPPORTED_METHOD = 1400
        RECIPIENT_NOT_FOUND = 1401
        REQUEST_PAYLOAD_TOO_LARGE = 1402
        UNSUPPORTED_SERVER = 1403
        UNSUPPORTED_VERSION = 1404

    ErrorMessage: ClassVar[dict[ErrorCode, str]] = {
        ErrorCode.APPLICATION_ERROR: "Application error in method handler",
        ErrorCode.CONNECTION_TIMEOUT: "Connection timeout",
        ErrorCode.RESPONSE_TIMEOUT: "Response timeout",
        ErrorCode.RECIPIENT_DISCONNECTED: "Recipient disconnected",
        ErrorCode.RESPONSE_PAYLOAD_TOO_LARGE: "Response payload too large",
        ErrorCode.SEND_FAILED: "Failed to send",
        ErrorCode.UNSUPPORTED_METHOD: "Method not supported at destination",
        ErrorCode.RECIPIENT_NOT_FOUND: "Recipient not found",
        ErrorCode.REQUEST_PAYLOAD_TOO_LARGE: "Request payload too large",
        ErrorCode.UNSUPPORTED_SERVER: "RPC not supported by server",
        ErrorCode.UNSUPPORTED_VERSION: "Unsupported RPC version",
    }

    def __init__(self, code: int | RpcError.ErrorCode, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self._code = int(code)
        self._message = message
        self._data = data

    @property
    def code(self) -> int:
        """The error code (one of :class:`ErrorCode` for built-in errors)."""
        return self._code

    @property
    def message(self) -> str:
        """What went wrong."""
        return self._message

    @property
    def data(self) -> str | None:
        """Extra data the handler attached, if any."""
        return self._data

    @classmethod
    def _built_in(cls, code: RpcError.ErrorCode, data: str | None = None) -> RpcError:
        return cls(code, cls.ErrorMessage[code], data)

    def _to_proto(self) -> models.RpcError:
        error = models.RpcError()
        error.code = self._code
        error.message = _cut(self._message, MAX_MESSAGE_BYTES)
        if self._data is not None:
            error.data = _cut(self._data, MAX_DATA_BYTES)
        return error

    @classmethod
    def _from_proto(cls, error: models.RpcError) -> RpcError:
        return cls(error.code, error.message, error.data or None)

    def __repr__(self) -> str:
        return f"RpcError(code={self._code}, message={self._message!r}, data={self._data!r})"


def _cut(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


@dataclass
class RpcInvocationData:
    """What a method handler receives for one incoming call."""

    request_id: str
    """The call's id (the same on both sides)."""
    caller_identity: str
    """The identity of the participant calling."""
    payload: str
    """The request payload (application-defined, often JSON)."""
    response_timeout: float
    """Seconds the caller waits for the response."""
    method: str = ""
    """The method called."""
    cancel_reason: RpcError.ErrorCode | None = None
    """Why the SDK cancelled the handler, set just before it does: ``RESPONSE_TIMEOUT``
    when the caller's deadline passed, ``RECIPIENT_DISCONNECTED`` when the room
    disconnected; None otherwise."""


@dataclass
class RpcCallInfo:
    """An outgoing call, as :meth:`RpcInterceptor.intercept_outgoing` sees it
    (the arguments of :meth:`LocalParticipant.perform_rpc`)."""

    destination_identity: str
    method: str
    payload: str
    response_timeout: float | None = None
    max_round_trip_latency: float | None = None


OutgoingRpcNext = Callable[[RpcCallInfo], Awaitable[str]]
"""What an outgoing interceptor calls to go on with the call."""
IncomingRpcNext = Callable[[RpcInvocationData], Awaitable[str | None]]
"""What an incoming interceptor calls to go on to the handler."""


class RpcInterceptor:
    """Wraps calls made and handled by a LocalParticipant
    (:meth:`LocalParticipant.add_rpc_interceptor`); the first added is outermost.

    Both methods pass through by default; override the direction you need and
    return (or raise) what ``next`` returns (or raises)."""

    async def intercept_outgoing(self, call: RpcCallInfo, next: OutgoingRpcNext) -> str:
        """Wrap one :meth:`LocalParticipant.perform_rpc`; returns the response payload."""
        return await next(call)

    async def intercept_incoming(self, invocation: RpcInvocationData, next: IncomingRpcNext) -> str | None:
        """Wrap the handling of one incoming call; returns the response payload."""
        return await next(invocation)


def chain_outgoing(interceptors: Sequence[RpcInterceptor], last: OutgoingRpcNext) -> OutgoingRpcNext:
    """``last`` wrapped in ``interceptors``, the first outermost."""
    step = last
    for interceptor in reversed(interceptors):
        step = _outgoing_step(interceptor, step)
    return step


def chain_incoming(interceptors: Sequence[RpcInterceptor], last: IncomingRpcNext) -> IncomingRpcNext:
    """``last`` wrapped in ``interceptors``, the first outermost."""
    step = last
    for interceptor in reversed(interceptors):
        step = _incoming_step(interceptor, step)
    return step


def _outgoing_step(interceptor: RpcInterceptor, inner: OutgoingRpcNext) -> OutgoingRpcNext:
    async def step(call: RpcCallInfo) -> str:
        return await interceptor.intercept_outgoing(call, inner)

    return step


def _incoming_step(interceptor: RpcInterceptor, inner: IncomingRpcNext) -> IncomingRpcNext:
    async def step(invocation: RpcInvocationData) -> str | None:
        return await interceptor.intercept_incoming(invocation, inner)

    return step
