"""LiveKit signal messages over an aiohttp WebSocket.

One protobuf per binary frame. The same class serves both ends: a server
receives ``SignalRequest`` and sends ``SignalResponse``; a client the reverse.

Sending never waits on the peer's socket for longer than a bound: every
connection has a bounded outgoing queue drained by one writer task, and a frame
that does not reach the socket within ``SEND_TIMEOUT_SECONDS`` (a peer that
stopped reading fills the TCP buffers) or a queue that overflows ends the
connection with a reason (``failure``). The server end also pings the peer and
gives up on one that leaves pings unanswered: a client that stopped reading but
receives little would otherwise never fill a buffer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Generic, NamedTuple, TypeVar

import aiohttp
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol import rtc as pb_rtc

__all__ = [
    "MAX_QUEUED_BYTES",
    "MAX_QUEUED_MESSAGES",
    "MAX_SIGNAL_MESSAGE_BYTES",
    "SEND_TIMEOUT_SECONDS",
    "ClientSignalConnection",
    "PeerCheckedConnection",
    "ServerSignalConnection",
    "SignalConnection",
    "SignalProtocolError",
    "server_websocket",
]

#: Largest signal frame accepted; SDP offers with many tracks stay well below.
MAX_SIGNAL_MESSAGE_BYTES = 1 << 20
#: Messages waiting for the socket before the peer counts as not reading.
MAX_QUEUED_MESSAGES = 1024
#: Bytes waiting for the socket before the peer counts as not reading (one larger message still goes alone).
MAX_QUEUED_BYTES = 8 << 20
#: Seconds one frame may take to reach the socket.
SEND_TIMEOUT_SECONDS = 5.0
#: Seconds the writer keeps flushing queued messages when the connection is closed.
CLOSE_FLUSH_SECONDS = 2.0
#: How often the server end pings its peer.
LIVENESS_PING_SECONDS = 2.0
#: Seconds a ping may stay unanswered before the peer counts as not reading.
LIVENESS_TIMEOUT_SECONDS = 6.0

# Any protobuf message: the signal protocol (SignalRequest/SignalResponse) and the
# agent worker protocol (WorkerMessage/ServerMessage) share this framing.
In = TypeVar("In", bound=Message)
Out = TypeVar("Out", bound=Message)

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse

_SEND_ERRORS = (ConnectionError, RuntimeError, aiohttp.ClientError)


class SignalProtocolError(ValueError):
    """The peer sent something that is not a valid signal message."""


class _Frame(NamedTuple):
    kind: aiohttp.WSMsgType
    data: bytes
    # Set for callers awaiting the write: True once written, False if it never will be.
    written: asyncio.Future[bool] | None


class SignalConnection(Generic[In, Out]):
    """Typed protobuf framing on top of an open aiohttp WebSocket.

    ``receive()`` returns ``None`` once the socket is closed and raises
    ``SignalProtocolError`` on a frame that does not parse. ``post()`` queues a
    message without waiting; ``send()`` queues it and waits until it is written.
    Both return ``False`` once the connection is closed or has failed, so a
    departing peer never raises into code that is broadcasting to a room.

    ``failure`` says why this end gave up on the peer (queue overflow, a write
    that did not complete in time, unanswered pings).
    """

    def __init__(
        self,
        ws: WebSocket,
        incoming: type[In],
        *,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self._ws = ws
        self._incoming: type[In] = incoming
        self._max_queued_messages = max_queued_messages
        self._max_queued_bytes = max_queued_bytes
        self._send_timeout = send_timeout
        self._queue: collections.deque[_Frame] = collections.deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.failure: str = ""

    @property
    def websocket(self) -> WebSocket:
        """The underlying aiohttp WebSocket."""
        return self._ws

    @property
    def closed(self) -> bool:
        """True once either side has closed the socket (or this end gave up on the peer)."""
        return bool(self._ws.closed) or bool(self.failure)

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code, once closed."""
        return self._ws.close_code

    @property
    def queued(self) -> int:
        """Messages waiting for the socket."""
        return len(self._queue)

    def post(self, message: Out) -> bool:
        """Queue one message without waiting; False if the connection is closed or failed."""
        return self._enqueue(aiohttp.WSMsgType.BINARY, message.SerializeToString(), None)

    async def send(self, message: Out) -> bool:
        """Send one message and wait until it is written; False if it was not."""
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self._enqueue(aiohttp.WSMsgType.BINARY, message.SerializeToString(), written):
            return False
        return await asyncio.shield(written)

    def _enqueue(self, kind: aiohttp.WSMsgType, data: bytes, written: asyncio.Future[bool] | None) -> bool:
        if self.closed or self._closing:
            return False
        if self._queue and (
            len(self._queue) >= self._max_queued_messages or self._queued_bytes + len(data) > self._max_queued_bytes
        ):
            self.fail(
                f"signal send queue full ({len(self._queue)} messages, {self._queued_bytes} bytes): peer is not reading"
            )
            return False
        self._queue.append(_Frame(kind, data, written))
        self._queued_bytes += len(data)
        self._wakeup.set()
        if self._writer is None or self._writer.done():
            # a writer cancelled from outside (asyncio.run ending) would leave this frame unwritten
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        return True

    async def _write_loop(self) -> None:
        try:
            await self._write_queued()
        finally:
            # However the writer ends, nobody is left waiting on a frame it will not write.
            self._drop_queue()

    async def _write_queued(self) -> None:
        while True:
            while not self._queue:
                if self._closing or self.closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            frame = self._queue[0]
            try:
                async with asyncio.timeout(self._send_timeout):
                    if frame.kind == aiohttp.WSMsgType.PING:
                        await self._ws.ping(frame.data)
                    elif frame.kind == aiohttp.WSMsgType.PONG:
                        await self._ws.pong(frame.data)
                    else:
                        await self._ws.send_bytes(frame.data)
            except TimeoutError:
                self.fail(
                    f"a signal message did not reach the socket within {self._send_timeout:g} s: peer is not reading"
                )
                return
            except _SEND_ERRORS as exc:
                if not self._ws.closed:
                    self.fail(f"writing to the signal socket failed: {exc}")
                return
            self._queue.popleft()
            self._queued_bytes -= len(frame.data)
            if frame.written is not None and not frame.written.done():
                frame.written.set_result(True)

    def _drop_queue(self) -> None:
        for frame in self._queue:
            if frame.written is not None and not frame.written.done():
                frame.written.set_result(False)
        self._queue.clear()
        self._queued_bytes = 0
        self._wakeup.set()

    def fail(self, reason: str) -> None:
        """Give up on the peer: drop what is queued and cut the socket (a close handshake would wait on it too)."""
        if self.failure or self._ws.closed:
            return
        self.failure = reason
        self._drop_queue()
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        self._stopped()
        sock = self._ws.get_extra_info("socket")
        if sock is not None:
            # Shutting the socket down ends the transport and wakes a pending
            # receive() with a close, without flushing what the peer never read.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def parse(self, data: bytes | str) -> In:
        """Parse one frame's payload (binary protobuf, or protobuf JSON in a text frame)."""
        message = self._incoming()
        if isinstance(data, str):
            try:
                json_format.Parse(data, message, ignore_unknown_fields=True)
            except (json_format.ParseError, ValueError) as exc:
                raise SignalProtocolError(
                    f"expected a {self._incoming.__name__} in protobuf JSON, got unparsable text ({exc})"
                ) from None
            return message
        if len(data) > MAX_SIGNAL_MESSAGE_BYTES:
            raise SignalProtocolError(
                f"expected a signal message of at most {MAX_SIGNAL_MESSAGE_BYTES} bytes, got {len(data)}"
            )
        try:
            message.ParseFromString(data)
        except Exception as exc:  # google.protobuf.message.DecodeError
            raise SignalProtocolError(
                f"expected a {self._incoming.__name__} protobuf, got {len(data)} undecodable bytes ({exc})"
            ) from None
        # A message with no known field set is returned as is: newer peers
        # send message types this protocol version lacks, and skipping them is
        # the receiver's choice.
        return message

    async def receive(self, timeout: float | None = None) -> In | None:
        """Next message, or None when the socket closes. Raises SignalProtocolError on bad input."""
        while True:
            msg = await self._ws.receive(timeout=timeout)
            if msg.type == aiohttp.WSMsgType.BINARY:
                return self.parse(bytes(msg.data))
            if msg.type == aiohttp.WSMsgType.TEXT:
                return self.parse(str(msg.data))
            if msg.type == aiohttp.WSMsgType.PING:
                # Only seen when aiohttp's own answering is off (see ServerSignalConnection).
                self._enqueue(aiohttp.WSMsgType.PONG, bytes(msg.data or b""), None)
                continue
            if msg.type == aiohttp.WSMsgType.PONG:
                self._pong_received()
                continue
            if msg.type == aiohttp.WSMsgType.ERROR:
                return None
            # CLOSE, CLOSING, CLOSED
            return None

    def _pong_received(self) -> None:
        """A pong from the peer: it has read everything sent before the ping."""

    async def close(self, reason: str = "", code: int = aiohttp.WSCloseCode.OK) -> None:
        """Flush what is queued (for at most ``CLOSE_FLUSH_SECONDS``), then close with ``code`` and ``reason``."""
        self._closing = True
        self._wakeup.set()
        writer = self._writer
        if writer is not None and not writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), CLOSE_FLUSH_SECONDS)
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        self._drop_queue()
        self._stopped()
        if self._ws.closed:
            return
        # A close frame's reason must fit in 123 bytes.
        message = reason.encode("utf-8")[:123]
        try:
            async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                await self._ws.close(code=code, message=message)
        except (TimeoutError, *_SEND_ERRORS):
            pass

    def _stopped(self) -> None:
        """The connection will send nothing more."""

    def __aiter__(self) -> AsyncIterator[In]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[In]:
        while True:
            message = await self.receive()
            if message is None:
                return
            yield message


class PeerCheckedConnection(SignalConnection[In, Out]):
    """Server end of a protobuf WebSocket that checks that the peer reads.

    Every ``liveness_ping`` seconds it pings the peer; a ping unanswered for
    ``liveness_timeout`` seconds fails the connection. Pings are answered by a
    client's WebSocket stack as it reads (browsers, tungstenite, aiohttp), so an
    unanswered one means the client stopped reading, however little it is sent.
    ``liveness_ping=0`` turns the check off. Make ``ws`` with
    :func:`server_websocket`: an aiohttp socket that answers pings itself
    swallows the pongs this check waits for.
    """

    def __init__(
        self,
        ws: WebSocket,
        incoming: type[In],
        *,
        liveness_ping: float = LIVENESS_PING_SECONDS,
        liveness_timeout: float = LIVENESS_TIMEOUT_SECONDS,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(
            ws,
            incoming,
            max_queued_messages=max_queued_messages,
            max_queued_bytes=max_queued_bytes,
            send_timeout=send_timeout,
        )
        self._liveness_ping = liveness_ping
        self._liveness_timeout = liveness_timeout
        self._unanswered_since: float | None = None
        self._liveness: asyncio.Task[None] | None = None
        if liveness_ping > 0 and isinstance(ws, web.WebSocketResponse):
            self._liveness = asyncio.get_running_loop().create_task(self._check_liveness())

    async def _check_liveness(self) -> None:
        while not self.closed and not self._closing:
            await asyncio.sleep(self._liveness_ping)
            now = time.monotonic()
            if self._unanswered_since is None:
                self._unanswered_since = now
                self._enqueue(aiohttp.WSMsgType.PING, b"", None)
            elif now - self._unanswered_since > self._liveness_timeout:
                self.fail(f"no pong within {self._liveness_timeout:g} s: peer is not reading")

    def _pong_received(self) -> None:
        self._unanswered_since = None

    def _stopped(self) -> None:
        if self._liveness is not None and self._liveness is not asyncio.current_task():
            self._liveness.cancel()


class ServerSignalConnection(PeerCheckedConnection[pb_rtc.SignalRequest, pb_rtc.SignalResponse]):
    """Server end of the signal protocol: receives SignalRequest, sends SignalResponse (see PeerCheckedConnection)."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        liveness_ping: float = LIVENESS_PING_SECONDS,
        liveness_timeout: float = LIVENESS_TIMEOUT_SECONDS,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(
            ws,
            pb_rtc.SignalRequest,
            liveness_ping=liveness_ping,
            liveness_timeout=liveness_timeout,
            max_queued_messages=max_queued_messages,
            max_queued_bytes=max_queued_bytes,
            send_timeout=send_timeout,
        )


def server_websocket() -> web.WebSocketResponse:
    """The server end's WebSocket, not yet prepared: pings and pongs reach :class:`ServerSignalConnection`."""
    return web.WebSocketResponse(max_msg_size=MAX_SIGNAL_MESSAGE_BYTES, autoping=False)


class ClientSignalConnection(SignalConnection[pb_rtc.SignalResponse, pb_rtc.SignalRequest]):
    """Client end: receives SignalResponse, sends SignalRequest."""

    def __init__(self, ws: WebSocket, *, send_timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        super().__init__(ws, pb_rtc.SignalResponse, send_timeout=send_timeout)


def which(message: Message) -> str | None:
    """Name of the field set in a SignalRequest/SignalResponse ``message`` oneof."""
    name: str | None = message.WhichOneof("message")
    return name
