"""Twirp on the server's HTTP port: how livekit-api and livekit-server-sdk call the server API.

A call is ``POST /twirp/<package>.<Service>/<Method>`` with a protobuf
(``application/protobuf``) or protobuf-JSON (``application/json``) body and
``Authorization: Bearer <token>``; the answer is the response message in the
request's content type, or a Twirp error: JSON ``{"code": ..., "msg": ...}``
with the HTTP status Twirp gives that code.

Adding a service is one call on the server's router (``Server.twirp``), with
the service's descriptor from livekit-protocol and a handler per method::

    from livekit.protocol import agent_dispatch

    server.twirp.add_service(
        agent_dispatch.DESCRIPTOR.services_by_name["AgentDispatchService"],
        {"CreateDispatch": create_dispatch, "ListDispatch": list_dispatch},
    )

A handler is ``async def handler(request, claims) -> response``: ``request``
is the method's input message already decoded, ``claims`` the verified token
(check grants with ``require_room_admin`` and friends), and it returns the
method's output message or raises ``TwirpError(code, msg)``. Methods of the
descriptor without a handler answer ``unimplemented`` naming the method;
``add_unimplemented(descriptor)`` does that for a whole service.

Every body is bounded (``limits.MAX_TWIRP_BODY_BYTES``, read within
``limits.TWIRP_BODY_SECONDS``) and refused unread past its bound; an
exception of a handler answers ``internal`` and is logged, never more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from kitewire.signal.token import AccessClaims, TokenError, verify_token

from .events import log_event
from .limits import MAX_TWIRP_BODY_BYTES, TWIRP_BODY_SECONDS

__all__ = [
    "TWIRP_PREFIX",
    "TWIRP_STATUS",
    "TwirpError",
    "TwirpHandler",
    "TwirpRouter",
    "require_room_admin",
    "require_room_create",
    "require_room_list",
]

logger = logging.getLogger("kitewire.server.twirp")

#: The path every Twirp call starts with.
TWIRP_PREFIX = "/twirp/"

#: Twirp error code -> HTTP status (the Twirp wire protocol's table).
TWIRP_STATUS: Mapping[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

_PROTOBUF_TYPES = ("application/protobuf", "application/x-protobuf")
_JSON_TYPE = "application/json"

#: ``async def handler(request, claims) -> response`` for one method.
TwirpHandler = Callable[[Any, AccessClaims], Awaitable[Message]]


class TwirpError(Exception):
    """A Twirp error answer: ``code`` (a key of ``TWIRP_STATUS``) and a message saying what was wrong."""

    def __init__(self, code: str, msg: str) -> None:
        if code not in TWIRP_STATUS:
            raise ValueError(f"TwirpError: expected a Twirp code ({', '.join(TWIRP_STATUS)}), got {code!r}")
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg

    @property
    def status(self) -> int:
        """The HTTP status Twirp answers this code with."""
        return TWIRP_STATUS[self.code]

    def response(self) -> web.Response:
        """The HTTP answer: JSON ``{"code", "msg"}`` with the code's status."""
        return web.json_response({"code": self.code, "msg": self.msg}, status=self.status)


def require_room_create(claims: AccessClaims) -> None:
    """Refuse unless the token grants roomCreate (CreateRoom, DeleteRoom)."""
    if not claims.video.room_create:
        raise TwirpError("permission_denied", "permissions denied: token lacks video.roomCreate")


def require_room_list(claims: AccessClaims) -> None:
    """Refuse unless the token grants roomList (ListRooms)."""
    if not claims.video.room_list:
        raise TwirpError("permission_denied", "permissions denied: token lacks video.roomList")


def require_room_admin(claims: AccessClaims, room: str) -> None:
    """Refuse unless the token grants roomAdmin for ``room`` (every call about one room)."""
    if not claims.video.room_admin:
        raise TwirpError("permission_denied", "permissions denied: token lacks video.roomAdmin")
    if claims.video.room != room:
        raise TwirpError(
            "permission_denied", f"permissions denied: token is for room {claims.video.room!r}, not {room!r}"
        )


@dataclass(frozen=True)
class _Method:
    service: str
    name: str
    request_type: type[Message]
    handler: TwirpHandler | None


class TwirpRouter:
    """The Twirp services of one server, by full name (``livekit.RoomService``)."""

    def __init__(self, keys: Mapping[str, str], *, max_body_bytes: int = MAX_TWIRP_BODY_BYTES) -> None:
        self._keys = keys
        self._max_body_bytes = max_body_bytes
        self._methods: dict[str, _Method] = {}
        self._services: set[str] = set()

    @property
    def services(self) -> frozenset[str]:
        """Full names of the services the router answers for."""
        return frozenset(self._services)

    def add_service(self, service: ServiceDescriptor, handlers: Mapping[str, TwirpHandler]) -> None:
        """Serve ``service``: ``handlers`` maps method names to handlers; the others answer unimplemented."""
        unknown = set(handlers) - set(service.methods_by_name)
        if unknown:
            raise ValueError(f"{service.full_name}: expected method names of the service, got {sorted(unknown)}")
        if service.full_name in self._services:
            raise ValueError(f"{service.full_name}: expected a service not added yet, got it twice")
        self._services.add(service.full_name)
        for name, method in service.methods_by_name.items():
            self._methods[f"{service.full_name}/{name}"] = _Method(
                service.full_name, name, GetMessageClass(method.input_type), handlers.get(name)
            )

    def add_unimplemented(self, service: ServiceDescriptor) -> None:
        """Answer every method of ``service`` with ``unimplemented`` naming it (rather than a bare 404)."""
        self.add_service(service, {})

    def install(self, app: web.Application) -> None:
        """Route ``/twirp/...`` of ``app`` to this router (any HTTP method, so a GET hears bad_route)."""
        app.router.add_route("*", TWIRP_PREFIX + "{route:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one Twirp call; every failure is a Twirp error response, never an exception."""
        route = request.match_info.get("route", request.path[len(TWIRP_PREFIX) :])
        try:
            return await self._call(request, route)
        except TwirpError as error:
            log_event(
                "twirp_refused",
                level=logging.WARNING if error.status < 500 else logging.ERROR,
                route=route[:200],
                code=error.code,
                reason=error.msg[:500],
                peer=request.remote or "",
            )
            return error.response()

    async def _call(self, request: web.Request, route: str) -> web.Response:
        if request.method != "POST":
            raise TwirpError("bad_route", f"unsupported method {request.method[:16]} (only POST is allowed)")
        method = self._methods.get(route)
        if method is None:
            raise TwirpError("bad_route", f"no handler for path {TWIRP_PREFIX + route[:200]!r}")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in _PROTOBUF_TYPES and content_type != _JSON_TYPE:
            raise TwirpError(
                "bad_route",
                f"unexpected Content-Type {content_type[:100]!r}: expected application/protobuf or application/json",
            )
        if method.handler is None:
            raise TwirpError("unimplemented", f"{method.service}/{method.name} is not implemented by kitewire")
        body = await self._read_body(request)
        claims = self._authenticate(request)
        message = _decode(method.request_type, body, json_body=content_type == _JSON_TYPE)
        try:
            answer = await method.handler(message, claims)
        except TwirpError:
            raise
        except Exception as exc:
            logger.exception("twirp %s/%s failed", method.service, method.name)
            raise TwirpError("internal", f"{method.service}/{method.name} failed: {type(exc).__name__}") from None
        if content_type == _JSON_TYPE:
            text = json_format.MessageToJson(answer, preserving_proto_field_name=True, indent=None)
            return web.Response(body=text.encode("utf-8"), content_type=_JSON_TYPE)
        return web.Response(body=answer.SerializeToString(), content_type="application/protobuf")

    async def _read_body(self, request: web.Request) -> bytes:
        bound = self._max_body_bytes
        too_big = f"request body: expected at most {bound} bytes"
        if request.content_length is not None and request.content_length > bound:
            raise TwirpError("invalid_argument", f"{too_big}, got {request.content_length}")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(TWIRP_BODY_SECONDS):
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > bound:
                        raise TwirpError("invalid_argument", f"{too_big}, got more")
                    chunks.append(chunk)
        except TimeoutError:
            raise TwirpError(
                "deadline_exceeded", f"request body not received within {TWIRP_BODY_SECONDS:g} s"
            ) from None
        return b"".join(chunks)

    def _authenticate(self, request: web.Request) -> AccessClaims:
        header = request.headers.get("Authorization", "")
        if not header:
            raise TwirpError("unauthenticated", "missing Authorization: Bearer <token> header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TwirpError("unauthenticated", "invalid Authorization header: expected 'Bearer <token>'")
        try:
            return verify_token(token.strip(), self._keys)
        except TokenError as exc:
            raise TwirpError("unauthenticated", f"invalid token: {exc.reason}") from None


def _decode(message_type: type[Message], body: bytes, *, json_body: bool) -> Message:
    message = message_type()
    name = message_type.DESCRIPTOR.full_name
    if json_body:
        try:
            # Twirp servers discard unknown JSON fields, so newer clients still talk to us.
            json_format.Parse(body.decode("utf-8") if body else "{}", message, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
            raise TwirpError("malformed", f"expected {name} in protobuf JSON, got an error: {str(exc)[:300]}") from None
        return message
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise TwirpError("malformed", f"expected {name} in protobuf, got an error: {str(exc)[:300]}") from None
    return message
