"""Guards in front of the HTTP/WebSocket port.

aiohttp parses requests but leaves a connection that never completes its
request headers open for ever, and takes every connection offered. The
``ConnectionGuard`` sits between the listening socket and aiohttp's protocol:
it refuses connections beyond a cap per server and per remote address (with a
503 or 429 written before anything is read), and closes, with a 408, a
connection whose first request's headers are not complete within a deadline.
Idle keep-alive connections are aiohttp's own ``keepalive_timeout``.

``BadRequestLog`` is the logger aiohttp's request handler is given: a malformed
request (bad request line, header too long, ...) becomes one info line instead
of an ERROR with a traceback; errors of our own handlers keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http import HttpProcessingError

from .events import log_event

__all__ = [
    "MAX_HEADER_FIELD_BYTES",
    "MAX_REQUEST_LINE_BYTES",
    "MAX_TOKEN_BYTES",
    "BadRequestLog",
    "ConnectionGuard",
]

#: Largest access token a join may carry (in ``access_token=`` or ``Authorization: Bearer``).
#: Tokens carry participant metadata and attributes, which applications fill generously.
MAX_TOKEN_BYTES = 64 * 1024
#: Request line limit: a token plus ``join_request`` (which may hold the first offer).
MAX_REQUEST_LINE_BYTES = 2 * MAX_TOKEN_BYTES
#: One header field: ``Authorization: Bearer <token>`` with room to spare.
MAX_HEADER_FIELD_BYTES = MAX_TOKEN_BYTES + 1024
#: Header fields one request may have (a browser's WebSocket upgrade sends about 15).
MAX_HEADERS = 64

# The blank line ending a request's headers: CRLF CRLF, or bare LFs, which lenient parsers take too.
_END_OF_HEADERS = (b"\n\r\n", b"\n\n")
_REFUSED_LINGER_SECONDS = 1.0


def _canned_response(status: str, reason: str) -> bytes:
    body = reason.encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class _RateLimitedEvent:
    """Logs an event at most once per second, with how many were not logged."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.count = 0
        self._last = -1.0
        self._unlogged = 0

    def __call__(self, **fields: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last < 1.0:
            self._unlogged += 1
            return
        self._last = now
        log_event(self.event, unlogged_since_last=self._unlogged, **fields)
        self._unlogged = 0


class ConnectionGuard:
    """Connection caps and the request-header deadline for one listening socket.

    ``protocol_factory(inner)`` wraps a protocol factory (aiohttp's ``web.Server``)
    for ``loop.create_server``. Counters: ``refused`` and ``timed_out``.
    """

    def __init__(self, *, max_connections: int, max_per_address: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.header_timeout = header_timeout
        self._open: set[_GuardedConnection] = set()
        self._per_address: dict[str, int] = {}
        self._refusals = _RateLimitedEvent("connection_refused")
        self._timeouts = _RateLimitedEvent("header_timeout")

    @property
    def open_connections(self) -> int:
        """Connections currently admitted."""
        return len(self._open)

    @property
    def refused(self) -> int:
        """Connections refused by a cap so far."""
        return self._refusals.count

    @property
    def timed_out(self) -> int:
        """Connections closed for not completing their request headers in time."""
        return self._timeouts.count

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A factory for ``loop.create_server`` guarding each protocol ``inner`` makes."""
        return lambda: _GuardedConnection(self, inner())

    def _admit(self, connection: _GuardedConnection) -> bytes | None:
        """Register a new connection; a canned refusal if a cap is reached."""
        address = connection.address
        if len(self._open) >= self.max_connections:
            self._refusals(peer=address, reason=f"server holds its maximum of {self.max_connections} connections")
            return _canned_response("503 Service Unavailable", "too many connections to this server")
        if self._per_address.get(address, 0) >= self.max_per_address:
            self._refusals(peer=address, reason=f"address holds its maximum of {self.max_per_address} connections")
            return _canned_response("429 Too Many Requests", "too many connections from this address")
        self._open.add(connection)
        self._per_address[address] = self._per_address.get(address, 0) + 1
        return None

    def _release(self, connection: _GuardedConnection) -> None:
        if connection not in self._open:
            return
        self._open.discard(connection)
        left = self._per_address[connection.address] - 1
        if left:
            self._per_address[connection.address] = left
        else:
            del self._per_address[connection.address]

    def _timed_out(self, connection: _GuardedConnection) -> None:
        self._timeouts(peer=connection.address, seconds=self.header_timeout)


class _GuardedConnection(asyncio.Protocol):
    """Passes everything to aiohttp's protocol once admitted; watches for the end of the first headers."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""
        self.address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")
        refusal = self._guard._admit(self)
        if refusal is not None:
            # Half-close after the answer so the peer reads it (closing with its
            # request unread would reset the connection); it gets a second to go.
            transport.write(refusal)
            transport.write_eof()
            asyncio.get_running_loop().call_later(_REFUSED_LINGER_SECONDS, transport.abort)
            return
        self._admitted = True
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._on_deadline)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._deadline is not None:
            # Only the first request's headers are timed; later ones are aiohttp's keep-alive.
            seen = self._tail + data
            if any(end in seen for end in _END_OF_HEADERS):
                self._deadline.cancel()
                self._deadline = None
                self._tail = b""
            else:
                self._tail = seen[-2:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._admitted:
            self._guard._release(self)
            self._inner.connection_lost(exc)

    def _on_deadline(self) -> None:
        self._deadline = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._guard._timed_out(self)
        transport.write(_canned_response("408 Request Timeout", "request headers not received in time"))
        transport.close()


class BadRequestLog(logging.LoggerAdapter[logging.Logger]):
    """The logger for aiohttp's request handler (its ``logger`` argument).

    aiohttp reports a request it could not parse with ``logger.exception``
    and the parser's error: that is the client's fault, so it becomes one
    ``event=bad_request`` info line naming the peer and the reason (also when
    aiohttp would log it at debug level). Anything
    else (an exception in one of our handlers) is logged with its traceback.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._bad_request(exc_info, args)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        # aiohttp logs a first request with an unparsable method (TLS or other
        # protocols on this port) at debug level instead; it gets the same line.
        if isinstance(exc_info, HttpProcessingError):
            self._bad_request(exc_info, args)
            return
        super().debug(msg, *args, exc_info=exc_info, **kwargs)

    @staticmethod
    def _bad_request(error: HttpProcessingError, args: tuple[object, ...]) -> None:
        peer = args[0] if args else ""
        log_event("bad_request", status=error.code, peer=peer, reason=error.message)
