"""The signal connection's bounded sending, against real aiohttp sockets whose peer may stop reading."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kitewire.signal import ClientSignalConnection, ServerSignalConnection
from kitewire.signal.connection import server_websocket
from livekit.protocol import rtc as pb_rtc

pytestmark = pytest.mark.timeout(30)


class Endpoint:
    """A WebSocket endpoint whose server-side connection the test drives; it reads until closed."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.connections: asyncio.Queue[ServerSignalConnection] = asyncio.Queue()
        self.received: list[pb_rtc.SignalRequest] = []
        self.ended = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = server_websocket()
        await ws.prepare(request)
        connection = ServerSignalConnection(ws, **self.options)
        self.connections.put_nowait(connection)
        async for message in connection:
            self.received.append(message)
        await connection.close()
        self.ended.set()
        return ws

    async def __aenter__(self) -> Endpoint:
        app = web.Application()
        app.router.add_get("/ws", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/ws"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def _response(size: int = 0) -> pb_rtc.SignalResponse:
    response = pb_rtc.SignalResponse()
    response.leave.reason = 1  # type: ignore[assignment]
    if size:
        response.room_update.room.metadata = "x" * size
    return response


async def _until(condition: Callable[[], bool], seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def test_a_peer_that_stops_reading_is_given_up_on(session: aiohttp.ClientSession) -> None:
    async with Endpoint(liveness_ping=0.2, liveness_timeout=0.6) as endpoint:
        async with session.ws_connect(endpoint.url) as _never_read:
            connection = await endpoint.connections.get()
            # Queuing never waits on the socket, whatever the peer does.
            assert all(connection.post(_response()) for _ in range(20))
            await asyncio.wait_for(endpoint.ended.wait(), 5)
            assert "no pong" in connection.failure and "not reading" in connection.failure
            assert connection.closed
            assert not connection.post(_response())
            assert not await connection.send(_response())


async def test_a_reading_peer_keeps_its_connection(session: aiohttp.ClientSession) -> None:
    async with Endpoint(liveness_ping=0.2, liveness_timeout=0.6) as endpoint:
        async with session.ws_connect(endpoint.url) as ws:
            client = ClientSignalConnection(ws)
            connection = await endpoint.connections.get()
            received: list[pb_rtc.SignalResponse] = []

            async def read() -> None:
                async for message in client:
                    received.append(message)

            reader = asyncio.get_running_loop().create_task(read())
            for _ in range(10):
                assert connection.post(_response())
                await asyncio.sleep(0.15)
            assert not connection.failure and not connection.closed
            assert await _until(lambda: len(received) == 10, 2)
            await connection.close("done")
            await asyncio.wait_for(reader, 5)


async def test_an_overflowing_queue_fails_the_connection(session: aiohttp.ClientSession) -> None:
    async with Endpoint(liveness_ping=0, max_queued_bytes=1 << 20) as endpoint:
        async with session.ws_connect(endpoint.url, max_msg_size=0) as _never_read:
            connection = await endpoint.connections.get()
            accepted = 0
            for _ in range(400):  # 100 MB offered, far more than the socket buffers take
                if not connection.post(_response(256 * 1024)):
                    break
                accepted += 1
                await asyncio.sleep(0)
            assert accepted < 400
            assert "queue full" in connection.failure, connection.failure
            await asyncio.wait_for(endpoint.ended.wait(), 5)


async def test_a_write_that_does_not_complete_fails_after_the_send_timeout(session: aiohttp.ClientSession) -> None:
    async with Endpoint(liveness_ping=0, send_timeout=0.5, max_queued_bytes=1 << 30) as endpoint:
        async with session.ws_connect(endpoint.url, max_msg_size=0) as _never_read:
            connection = await endpoint.connections.get()
            results = [await connection.send(_response(1 << 20)) for _ in range(100)]
            assert results[0] and not results[-1]
            assert "did not reach the socket" in connection.failure, connection.failure
            await asyncio.wait_for(endpoint.ended.wait(), 5)


async def test_client_send_waits_for_the_write_and_stops_after_close(session: aiohttp.ClientSession) -> None:
    async with Endpoint(liveness_ping=0) as endpoint:
        ws = await session.ws_connect(endpoint.url)
        client = ClientSignalConnection(ws)
        request = pb_rtc.SignalRequest()
        request.ping = 42
        assert await client.send(request)
        assert await _until(lambda: [r.ping for r in endpoint.received] == [42], 2)
        # Posted messages still go out when the connection closes right after.
        request.ping = 43
        assert client.post(request)
        await client.close("bye")
        assert await _until(lambda: [r.ping for r in endpoint.received] == [42, 43], 2)
        assert client.closed
        assert not client.post(request)
        assert not await client.send(request)
        await asyncio.wait_for(endpoint.ended.wait(), 5)
