"""A small LiveKit signal client: join a room, then exchange signal messages.

``connect()`` opens the WebSocket (``/rtc/v1`` first, legacy ``/rtc`` when the
server does not know v1), waits for the ``JoinResponse`` and returns it with a
``SignalClient``.

The path decides the PeerConnection model, for LiveKit servers and kitewire's
alike: after a ``/rtc/v1`` join the server expects ONE PeerConnection (the
client always offers, the server sends media on recvonly m-lines the client
adds when asked by ``MediaSectionsRequirement``, and opens its data channels
on that PeerConnection); after a legacy ``/rtc`` join it expects two (the
server offers the subscriber one). ``SignalClient.single_pc_mode`` tells which.
The client keeps the connection alive with ``ping_req``
messages at the server's ``ping_interval`` and closes itself when no pong came
within ``ping_timeout``; pongs are consumed here and surface as ``rtt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from .connection import ClientSignalConnection, SignalProtocolError
from .join import build_join_url, validate_url

__all__ = ["SignalClient", "SignalConnectError", "connect"]

logger = logging.getLogger("kitewire.signal")


class SignalConnectError(ConnectionError):
    """Joining failed. ``status`` is the HTTP status (0 when there was none) and ``reason`` the server's text."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(f"{status} {reason}" if status else reason)
        self.reason = reason
        self.status = status


class SignalClient:
    """One open signal connection to a server, after a successful join."""

    def __init__(
        self,
        connection: ClientSignalConnection,
        session: aiohttp.ClientSession | None,
        *,
        ping_interval: float,
        ping_timeout: float,
        single_pc_mode: bool = False,
    ) -> None:
        self._connection = connection
        self.single_pc_mode = single_pc_mode
        """True when joined through ``/rtc/v1``: one PeerConnection for both directions."""
        # Only closed by us when we created it.
        self._owned_session = session
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._last_pong_at = time.monotonic()
        self.rtt_ms: int = 0
        self._ping_task: asyncio.Task[None] | None = None
        if ping_interval > 0:
            self._ping_task = asyncio.get_running_loop().create_task(self._ping_loop())
        self.close_reason: str = ""

    @property
    def connection(self) -> ClientSignalConnection:
        """The framed WebSocket underneath."""
        return self._connection

    @property
    def closed(self) -> bool:
        """True once the signal connection is closed."""
        return self._connection.closed

    async def send(self, request: pb_rtc.SignalRequest) -> bool:
        """Send one SignalRequest; False if the connection is closed."""
        return await self._connection.send(request)

    async def recv(self, timeout: float | None = None) -> pb_rtc.SignalResponse | None:
        """Next SignalResponse other than pongs, or None once the connection is closed.

        Raises ``asyncio.TimeoutError`` when ``timeout`` passes without a message,
        and ``SignalProtocolError`` when the server sends an unparsable frame.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            message = await self._connection.receive(timeout=remaining)
            if message is None:
                return None
            kind = message.WhichOneof("message")
            if kind == "pong_resp":
                self._last_pong_at = time.monotonic()
                now_ms = int(time.time() * 1000)
                self.rtt_ms = max(0, now_ms - message.pong_resp.last_ping_timestamp)
                continue
            if kind == "pong":
                self._last_pong_at = time.monotonic()
                continue
            if kind == "leave":
                self.close_reason = pb_models.DisconnectReason.Name(message.leave.reason)
            return message

    def __aiter__(self) -> AsyncIterator[pb_rtc.SignalResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[pb_rtc.SignalResponse]:
        while True:
            message = await self.recv()
            if message is None:
                return
            yield message

    # Convenience senders for the common requests.

    async def send_offer(self, sdp: str, offer_id: int = 0) -> bool:
        """Send the publisher's offer."""
        return await self._send_description("offer", sdp, offer_id)

    async def send_answer(self, sdp: str, offer_id: int = 0) -> bool:
        """Answer a subscriber offer from the server."""
        return await self._send_description("answer", sdp, offer_id)

    async def _send_description(self, kind: str, sdp: str, offer_id: int) -> bool:
        request = pb_rtc.SignalRequest()
        description = request.offer if kind == "offer" else request.answer
        description.type = kind
        description.sdp = sdp
        if offer_id:
            description.id = offer_id
        return await self.send(request)

    async def send_trickle(self, candidate_init_json: str, target: int, *, final: bool = False) -> bool:
        """Send one ICE candidate (``candidateInit`` JSON) for PUBLISHER (0) or SUBSCRIBER (1)."""
        request = pb_rtc.SignalRequest()
        request.trickle.candidateInit = candidate_init_json
        request.trickle.target = target  # type: ignore[assignment]
        request.trickle.final = final
        return await self.send(request)

    async def send_leave(self, reason: int = pb_models.DisconnectReason.CLIENT_INITIATED) -> bool:
        """Tell the server we leave on purpose."""
        request = pb_rtc.SignalRequest()
        request.leave.reason = reason  # type: ignore[assignment]
        request.leave.action = pb_rtc.LeaveRequest.DISCONNECT
        return await self.send(request)

    async def ping(self) -> bool:
        """Send one ``ping_req`` carrying the wall-clock time in ms and the last RTT."""
        request = pb_rtc.SignalRequest()
        request.ping_req.timestamp = int(time.time() * 1000)
        request.ping_req.rtt = self.rtt_ms
        return await self.send(request)

    async def _ping_loop(self) -> None:
        try:
            while not self._connection.closed:
                await asyncio.sleep(self._ping_interval)
                if (
                    self._ping_timeout > 0
                    and time.monotonic() - self._last_pong_at > self._ping_timeout + self._ping_interval
                ):
                    self.close_reason = "ping timeout"
                    logger.info("signal: no pong within %.0f s, closing", self._ping_timeout)
                    await self._connection.close("ping timeout")
                    return
                await self.ping()
        except asyncio.CancelledError:
            pass

    async def close(self, *, leave: bool = True) -> None:
        """Close the connection, first telling the server we leave when ``leave``."""
        if self._ping_task is not None:
            self._ping_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ping_task
            self._ping_task = None
        if leave and not self._connection.closed:
            await self.send_leave()
        await self._connection.close("client closed")
        if self._owned_session is not None:
            await self._owned_session.close()
            self._owned_session = None

    async def __aenter__(self) -> SignalClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _refusal_reason(session: aiohttp.ClientSession, url: str, token: str, legacy: bool, status: int) -> str:
    """Ask the validate endpoint why a join was refused (WebSocket handshakes carry no body)."""
    http_url, headers = validate_url(url, token, legacy=legacy)
    try:
        async with session.get(http_url, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as response:
            text = (await response.text())[:500].strip()
            return text or response.reason or f"HTTP {status}"
    except (TimeoutError, aiohttp.ClientError):
        return f"HTTP {status}"


async def connect(
    url: str,
    token: str,
    *,
    auto_subscribe: bool = True,
    adaptive_stream: bool = False,
    publisher_offer: pb_rtc.SessionDescription | None = None,
    join_request: pb_rtc.JoinRequest | None = None,
    legacy: bool | None = None,
    timeout: float = 10.0,
    keepalive: bool = True,
    session: aiohttp.ClientSession | None = None,
) -> tuple[SignalClient, pb_rtc.JoinResponse]:
    """Join the room named in ``token`` on the server at ``url``.

    ``legacy=None`` tries ``/rtc/v1`` then falls back to ``/rtc`` on 404;
    ``True``/``False`` force one form. ``publisher_offer`` (v1 only) lets the
    server answer the first publisher offer right after the JoinResponse.
    A full ``join_request`` overrides the other join settings.
    Raises ``SignalConnectError`` with the server's reason when refused.
    """
    if join_request is None:
        join_request = pb_rtc.JoinRequest()
        join_request.connection_settings.auto_subscribe = auto_subscribe
        join_request.connection_settings.adaptive_stream = adaptive_stream
        if publisher_offer is not None:
            join_request.publisher_offer.CopyFrom(publisher_offer)
    own_session = session is None
    http = session if session is not None else aiohttp.ClientSession()
    attempts = [False, True] if legacy is None else [legacy]
    try:
        ws: aiohttp.ClientWebSocketResponse | None = None
        joined_legacy = True
        for use_legacy in attempts:
            ws_url, headers = build_join_url(url, token, join_request, legacy=use_legacy)
            try:
                ws = await http.ws_connect(
                    ws_url,
                    headers=headers,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                    max_msg_size=0,
                    autoping=True,
                )
                joined_legacy = use_legacy
                break
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 404 and use_legacy is False and len(attempts) > 1:
                    continue
                reason = await _refusal_reason(http, url, token, use_legacy, exc.status)
                raise SignalConnectError(reason, exc.status) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise SignalConnectError(f"could not reach {url}: {exc}") from None
        if ws is None:
            raise SignalConnectError(f"{url} has neither /rtc/v1 nor /rtc", 404)
        connection = ClientSignalConnection(ws)
        try:
            first = await asyncio.wait_for(connection.receive(), timeout)
        except TimeoutError:
            await connection.close("join timeout")
            raise SignalConnectError(f"no JoinResponse within {timeout} s") from None
        except SignalProtocolError as exc:
            await connection.close("bad join response")
            raise SignalConnectError(str(exc)) from None
        if first is None:
            raise SignalConnectError(f"server closed the signal connection before joining (code {ws.close_code})")
        kind = first.WhichOneof("message")
        if kind == "leave":
            await connection.close()
            reason = pb_models.DisconnectReason.Name(first.leave.reason)
            raise SignalConnectError(f"server refused the join: {reason}")
        if kind != "join":
            await connection.close("expected join")
            raise SignalConnectError(f"expected a JoinResponse first, got {kind}")
        join = first.join
        ping_interval = float(join.ping_interval) if keepalive else 0.0
        client = SignalClient(
            connection,
            http if own_session else None,
            ping_interval=ping_interval,
            ping_timeout=float(join.ping_timeout),
            single_pc_mode=not joined_legacy,
        )
        own_session = False  # the client owns it now
        return client, join
    finally:
        if own_session:
            await http.close()
