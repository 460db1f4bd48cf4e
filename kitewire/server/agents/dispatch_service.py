"""AgentDispatchService (CreateDispatch, DeleteDispatch, ListDispatch) as plain methods over protobufs.

Each method takes the request message and the caller's verified claims and
returns the response message, or raises ``DispatchError`` carrying the Twirp
error code to answer with. The Twirp transport (routing, bodies, auth header)
is the server's (``server/twirp.py``), which this service is added to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message
from livekit.protocol import agent_dispatch as pb_dispatch

from kitewire.signal.token import AccessClaims

from ..twirp import TwirpError, require_room_admin
from .dispatcher import Dispatcher, DispatchLimitError

__all__ = ["AGENT_DISPATCH_SERVICE", "AgentDispatchService", "DispatchError"]

#: Largest dispatch metadata accepted (LiveKit's participant metadata bound).
MAX_METADATA_BYTES = 64 * 1024
#: Attributes one dispatch may carry, and their size.
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_BYTES = 4096


#: The service's descriptor, for the server's Twirp router.
AGENT_DISPATCH_SERVICE = pb_dispatch.DESCRIPTOR.services_by_name["AgentDispatchService"]


class DispatchError(TwirpError):
    """A refused AgentDispatchService call; ``code`` is the Twirp error code ("not_found", ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.message = message


def _authorize(claims: AccessClaims, room: str) -> None:
    # livekit-api signs these calls with roomAdmin for the room, as livekit-server requires.
    if not room:
        raise DispatchError("invalid_argument", "expected a room name, got ''")
    require_room_admin(claims, room)


def _check_request(request: pb_dispatch.CreateAgentDispatchRequest) -> None:
    if len(request.metadata.encode()) > MAX_METADATA_BYTES:
        raise DispatchError("invalid_argument", f"expected metadata of at most {MAX_METADATA_BYTES} bytes")
    if len(request.attributes) > MAX_ATTRIBUTES:
        raise DispatchError(
            "invalid_argument", f"expected at most {MAX_ATTRIBUTES} attributes, got {len(request.attributes)}"
        )
    for key, value in request.attributes.items():
        if len(key.encode()) + len(value.encode()) > MAX_ATTRIBUTE_BYTES:
            raise DispatchError("invalid_argument", f"attribute {key[:64]!r} is over {MAX_ATTRIBUTE_BYTES} bytes")
    if request.restart_policy not in pb_dispatch.JobRestartPolicy.values():
        raise DispatchError("invalid_argument", f"expected a JobRestartPolicy, got {request.restart_policy}")


class AgentDispatchService:
    """LiveKit's AgentDispatchService over one server's ``Dispatcher``."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def handlers(self) -> dict[str, Callable[[Any, AccessClaims], Awaitable[Message]]]:
        """Method name -> ``async handler(request, claims)``, the form a Twirp router takes.

        The handlers raise ``DispatchError`` (a TwirpError); the router answers with its ``code``.
        """

        def bind(method: Callable[[Any, AccessClaims], Message]) -> Callable[[Any, AccessClaims], Awaitable[Message]]:
            async def handler(request: Any, claims: AccessClaims) -> Message:
                return method(request, claims)

            return handler

        return {
            "CreateDispatch": bind(self.create_dispatch),
            "DeleteDispatch": bind(self.delete_dispatch),
            "ListDispatch": bind(self.list_dispatch),
        }

    def create_dispatch(
        self, request: pb_dispatch.CreateAgentDispatchRequest, claims: AccessClaims
    ) -> pb_dispatch.AgentDispatch:
        """Dispatch ``request.agent_name`` to ``request.room``; the job starts once the room is open."""
        _authorize(claims, request.room)
        _check_request(request)
        try:
            dispatch = self.dispatcher.create_dispatch(
                request.room,
                request.agent_name,
                metadata=request.metadata,
                attributes=dict(request.attributes),
                restart_policy=request.restart_policy,
            )
        except DispatchLimitError as exc:
            raise DispatchError("resource_exhausted", str(exc)) from None
        return dispatch.to_proto()

    def delete_dispatch(
        self, request: pb_dispatch.DeleteAgentDispatchRequest, claims: AccessClaims
    ) -> pb_dispatch.AgentDispatch:
        """Remove a dispatch and terminate its jobs."""
        _authorize(claims, request.room)
        dispatch = self.dispatcher.dispatches.get(request.dispatch_id)
        if dispatch is None or dispatch.room != request.room:
            raise DispatchError("not_found", f"no dispatch {request.dispatch_id!r} in room {request.room!r}")
        deleted = self.dispatcher.delete_dispatch(dispatch.id)
        assert deleted is not None
        return deleted.to_proto()

    def list_dispatch(
        self, request: pb_dispatch.ListAgentDispatchRequest, claims: AccessClaims
    ) -> pb_dispatch.ListAgentDispatchResponse:
        """The room's dispatches (or the one ``request.dispatch_id`` names) with their jobs."""
        _authorize(claims, request.room)
        response = pb_dispatch.ListAgentDispatchResponse()
        for dispatch in self.dispatcher.room_dispatches(request.room):
            if not request.dispatch_id or dispatch.id == request.dispatch_id:
                response.agent_dispatches.append(dispatch.to_proto())
        return response
