"""LiveKit signal messages over an aiohttp WebSocket.

One protobuf per binary frame. The same class serves both ends: a server
receives ``SignalRequest`` and sends ``SignalResponse``; a client the reverse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import aiohttp
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol import rtc as pb_rtc

__all__ = [
    "MAX_SIGNAL_MESSAGE_BYTES",
    "ClientSignalConnection",
    "ServerSignalConnection",
    "SignalConnection",
    "SignalProtocolError",
]

#: Largest signal frame accepted; SDP offers with many tracks stay well below.
MAX_SIGNAL_MESSAGE_BYTES = 1 << 20

In = TypeVar("In", pb_rtc.SignalRequest, pb_rtc.SignalResponse)
Out = TypeVar("Out", pb_rtc.SignalRequest, pb_rtc.SignalResponse)

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class SignalProtocolError(ValueError):
    """The peer sent something that is not a valid signal message."""


class SignalConnection(Generic[In, Out]):
    """Typed protobuf framing on top of an open aiohttp WebSocket.

    ``receive()`` returns ``None`` once the socket is closed and raises
    ``SignalProtocolError`` on a frame that does not parse. ``send()`` after
    close is a no-op returning ``False``, so a departing peer never raises
    into code that is broadcasting to a room.
    """

    def __init__(self, ws: WebSocket, incoming: type[In]) -> None:
        self._ws = ws
        self._incoming: type[In] = incoming
        self._send_lock = asyncio.Lock()

    @property
    def websocket(self) -> WebSocket:
        """The underlying aiohttp WebSocket."""
        return self._ws

    @property
    def closed(self) -> bool:
        """True once either side has closed the socket."""
        return bool(self._ws.closed)

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code, once closed."""
        return self._ws.close_code

    async def send(self, message: Out) -> bool:
        """Send one message as a binary frame; False if the socket is already closed."""
        if self._ws.closed:
            return False
        data = message.SerializeToString()
        try:
            async with self._send_lock:
                await self._ws.send_bytes(data)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False
        return True

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
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            if msg.type == aiohttp.WSMsgType.ERROR:
                return None
            # CLOSE, CLOSING, CLOSED
            return None

    async def close(self, reason: str = "", code: int = aiohttp.WSCloseCode.OK) -> None:
        """Close the socket with ``code`` and a (truncated) textual reason."""
        if self._ws.closed:
            return
        # A close frame's reason must fit in 123 bytes.
        message = reason.encode("utf-8")[:123]
        try:
            await self._ws.close(code=code, message=message)
        except (TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError):
            pass

    def __aiter__(self) -> AsyncIterator[In]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[In]:
        while True:
            message = await self.receive()
            if message is None:
                return
            yield message


class ServerSignalConnection(SignalConnection[pb_rtc.SignalRequest, pb_rtc.SignalResponse]):
    """Server end: receives SignalRequest, sends SignalResponse."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws, pb_rtc.SignalRequest)


class ClientSignalConnection(SignalConnection[pb_rtc.SignalResponse, pb_rtc.SignalRequest]):
    """Client end: receives SignalResponse, sends SignalRequest."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws, pb_rtc.SignalResponse)


def which(message: Message) -> str | None:
    """Name of the field set in a SignalRequest/SignalResponse ``message`` oneof."""
    name: str | None = message.WhichOneof("message")
    return name
