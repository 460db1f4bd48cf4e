"""A front for a kitewire server that answers ``/rtc/v1`` with 404, as LiveKit servers from
before v1 do, and relays legacy ``/rtc`` signal connections to the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web


async def _relay(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, target: object) -> None:
    assert isinstance(target, (web.WebSocketResponse, aiohttp.ClientWebSocketResponse))
    async for message in source:
        if message.type == aiohttp.WSMsgType.BINARY:
            await target.send_bytes(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            await target.send_str(message.data)
    await target.close()


@contextlib.asynccontextmanager
async def legacy_only_proxy(server_url: str) -> AsyncIterator[str]:
    """Yields the ws:// URL of the front; it stops on exit."""
    http = aiohttp.ClientSession()

    async def rtc(request: web.Request) -> web.StreamResponse:
        try:
            upstream = await http.ws_connect(f"{server_url}/rtc?{request.query_string}", max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status, text="refused upstream")
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        try:
            await asyncio.gather(_relay(client, upstream), _relay(upstream, client))
        finally:
            await upstream.close()
        return client

    async def not_found(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="404 page not found")

    app = web.Application()
    app.router.add_get("/rtc", rtc)
    app.router.add_get("/rtc/v1", not_found)
    app.router.add_get("/rtc/v1/validate", not_found)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await http.close()
