"""The signal client against a minimal aiohttp endpoint written in the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from kitewire.signal import (
    ServerSignalConnection,
    SignalConnectError,
    connect,
    parse_join_request,
)
from kitewire.signal.connection import server_websocket
from livekit.protocol import rtc as pb_rtc

pytestmark = pytest.mark.timeout(30)


class TinyServer:
    def __init__(self, *, v1: bool = True) -> None:
        self.v1 = v1
        self.joins: list[pb_rtc.JoinRequest] = []
        self.paths: list[str] = []
        self.received: list[pb_rtc.SignalRequest] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        if request.path.startswith("/rtc/v1") and not self.v1:
            raise web.HTTPNotFound()
        params = parse_join_request(request.path, request.query, request.headers)
        if request.path.endswith("/validate"):
            return web.Response(status=401, text="no good: " + params.token)
        if params.token != "good":
            raise web.HTTPUnauthorized(text="invalid token")
        ws = server_websocket()
        await ws.prepare(request)
        conn = ServerSignalConnection(ws)
        self.joins.append(params.join_request)
        response = pb_rtc.SignalResponse()
        response.join.room.name = "r"
        response.join.participant.identity = "me"
        response.join.ping_interval = 1
        response.join.ping_timeout = 5
        await conn.send(response)
        async for message in conn:
            self.received.append(message)
            if message.WhichOneof("message") == "ping_req":
                pong = pb_rtc.SignalResponse()
                pong.pong_resp.last_ping_timestamp = message.ping_req.timestamp
                await conn.send(pong)
            elif message.WhichOneof("message") == "offer":
                answer = pb_rtc.SignalResponse()
                answer.answer.type = "answer"
                answer.answer.sdp = "echo:" + message.offer.sdp
                await conn.send(answer)
        return ws

    async def __aenter__(self) -> TinyServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[TinyServer]:
    async with TinyServer() as s:
        yield s


async def test_connect_v1_offer_ping_leave(server: TinyServer) -> None:
    offer = pb_rtc.SessionDescription(type="offer", sdp="SDP")
    client, join = await connect(server.url, "good", auto_subscribe=False, publisher_offer=offer)
    try:
        assert join.room.name == "r" and join.participant.identity == "me"
        assert server.paths[-1] == "/rtc/v1"
        assert server.joins[0].publisher_offer.sdp == "SDP"
        assert server.joins[0].connection_settings.auto_subscribe is False
        assert client.single_pc_mode
        assert await client.send_offer("second")
        message = await client.recv(timeout=5)
        assert message is not None and message.answer.sdp == "echo:second"
        # the keepalive loop pings every second; the pong is consumed
        await asyncio.sleep(1.5)
        assert any(m.WhichOneof("message") == "ping_req" for m in server.received)
    finally:
        await client.close()
    await asyncio.sleep(0.2)
    assert server.received[-1].WhichOneof("message") == "leave"


async def test_falls_back_to_legacy() -> None:
    async with TinyServer(v1=False) as legacy_server:
        client, join = await connect(legacy_server.url, "good")
        try:
            assert legacy_server.paths == ["/rtc/v1", "/rtc"]
            assert not client.single_pc_mode
            assert join.participant.identity == "me"
        finally:
            await client.close()


async def test_refusal_carries_reason(server: TinyServer) -> None:
    with pytest.raises(SignalConnectError) as info:
        await connect(server.url, "bad")
    assert info.value.status == 401
    assert "no good: bad" in info.value.reason


async def test_unreachable_server() -> None:
    with pytest.raises(SignalConnectError, match="could not reach"):
        await connect("ws://127.0.0.1:1", "good", timeout=2)
