"""The HTTP port under hostile or odd connections: header and idle timeouts,
connection caps, big tokens, malformed requests."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from kitewire.server import Server, ServerConfig
from kitewire.server.cli import add_arguments, build_config
from kitewire.server.http_guard import MAX_HEADER_FIELD_BYTES, MAX_REQUEST_LINE_BYTES, MAX_TOKEN_BYTES
from livekit import api, rtc

pytestmark = pytest.mark.timeout(120)


@asynccontextmanager
async def serving(**overrides: object) -> AsyncIterator[Server]:
    async with Server(ServerConfig.dev(port=0, empty_timeout=0.5, **overrides)) as server:
        yield server


async def _connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (TimeoutError if it does not)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_slowloris_sockets_are_closed_by_the_header_timeout() -> None:
    async with serving(http_header_timeout=1.0) as server:
        sockets = [await _connect(server) for _ in range(300)]
        for _, writer in sockets:
            writer.write(b"GET /rtc HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await asyncio.sleep(0.5)
        for _, writer in sockets:
            writer.write(b"X-Still-Typing: yes\r\n")  # dribbling headers does not extend the deadline
        assert server.http_guard.open_connections == 300
        answers = await asyncio.gather(*(_closed_by_server(reader, 5.0) for reader, _ in sockets))
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
        assert server.http_guard.timed_out == 300
        for _, writer in sockets:
            writer.close()
        await asyncio.sleep(0.1)
        assert server.http_guard.open_connections == 0
        # ... and the server serves the next client as usual.
        async with aiohttp.ClientSession() as session, session.get(server.http_url) as response:
            assert response.status == 200 and await response.text() == "OK"


async def test_a_connection_that_completed_its_headers_is_not_timed_out() -> None:
    async with serving(http_header_timeout=0.5, http_idle_timeout=1.5) as server:
        reader, writer = await _connect(server)
        # The end of the headers split across two reads still counts as the end.
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"\n")
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(1.0)  # past the header deadline, within the idle timeout
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"HTTP/1.1 200" not in data:
            chunk = await asyncio.wait_for(reader.read(4096), 5)
            assert chunk, f"connection closed before the second response: {data!r}"
            data += chunk
        # An idle keep-alive connection is closed after http_idle_timeout.
        await _closed_by_server(reader, 5.0)
        assert server.http_guard.timed_out == 0
        writer.close()


async def test_connection_caps_per_address_and_per_server() -> None:
    async with serving(max_connections_per_address=5) as server:
        held = [await _connect(server) for _ in range(5)]
        reader, writer = await _connect(server)
        answer = await _closed_by_server(reader, 5.0)
        assert answer.startswith(b"HTTP/1.1 429 ") and b"too many connections from this address" in answer
        writer.close()
        assert server.http_guard.refused == 1 and server.http_guard.open_connections == 5
        held[0][1].close()
        await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session, session.get(server.http_url) as response:
            assert response.status == 200
        for _, w in held[1:]:
            w.close()
    async with serving(max_connections=3) as server:
        held = [await _connect(server) for _ in range(3)]
        async with aiohttp.ClientSession() as session:
            # aiohttp's client reads the early answer as the response to its request.
            async with session.get(server.http_url) as response:
                assert response.status == 503
                assert "too many connections to this server" in await response.text()
        for _, w in held:
            w.close()


def _big_token(size: int, identity: str = "bigtoken", room: str = "big") -> str:
    """A livekit-api token of a little under ``size`` characters (the metadata makes it big)."""
    grants = api.VideoGrants(room_join=True, room=room)

    def token(filler: int) -> str:
        builder = api.AccessToken("devkey", "secret").with_identity(identity).with_grants(grants)
        return builder.with_metadata("m" * filler).with_attributes({"a": "b" * 100}).to_jwt()

    # base64url turns 3 bytes of claims into 4 characters.
    filler = (size - 100 - len(token(0))) * 3 // 4
    while len(token(filler)) > size:
        filler -= 16
    return token(filler)


async def test_a_64_kB_token_joins(server: Server) -> None:
    token = _big_token(MAX_TOKEN_BYTES)
    assert MAX_TOKEN_BYTES - 200 <= len(token) <= MAX_TOKEN_BYTES
    async with aiohttp.ClientSession() as session:
        # In the Authorization header ...
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{server.http_url}/rtc/v1/validate", headers=headers) as response:
            assert response.status == 200, await response.text()
        # ... and in the query string, as livekit's SDKs send it.
        async with session.get(f"{server.http_url}/rtc/validate", params={"access_token": token}) as response:
            assert response.status == 200, await response.text()
    room = rtc.Room()
    try:
        await asyncio.wait_for(room.connect(server.url, token), 20)
        assert room.local_participant.identity == "bigtoken"
        assert len(room.local_participant.metadata) > MAX_TOKEN_BYTES // 2
        assert "bigtoken" in server.rooms.rooms["big"].participants
    finally:
        await room.disconnect()


BAD_REQUESTS = {
    "request line too long": b"GET /rtc?access_token=" + b"x" * (MAX_REQUEST_LINE_BYTES + 10) + b" HTTP/1.1\r\n\r\n",
    "header too long": b"GET / HTTP/1.1\r\nAuthorization: Bearer " + b"y" * (MAX_HEADER_FIELD_BYTES + 10) + b"\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello?\r\n\r\n",
    "bad header line": b"GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
    "bad version": b"GET / HTTP/9.x\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
async def test_malformed_requests_get_400_and_one_info_line(
    server: Server, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    reader, writer = await _connect(server)
    writer.write(BAD_REQUESTS[name])
    answer = await _closed_by_server(reader, 5.0)
    writer.close()
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:200]
    await asyncio.sleep(0.05)
    records = [r for r in caplog.records if r.name.startswith(("kitewire", "aiohttp"))]
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage().startswith("event=bad_request status=400 peer=127.0.0.1")


async def test_an_error_in_our_own_handler_still_logs_its_traceback(
    server: Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(server, "_authorize", broken)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.http_url}/rtc/validate") as response:
            assert response.status == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info is not None


def test_http_limits_from_the_config_file(tmp_path: Path) -> None:
    parser = argparse_parser()
    config_file = tmp_path / "kitewire.yaml"
    config_file.write_text(
        "http:\n  header_timeout: 2.5\n  idle_timeout: 20\n  max_connections: 100\n  max_connections_per_address: 10\n"
    )
    config = build_config(parser.parse_args(["--dev", "--config", str(config_file)]))
    assert (config.http_header_timeout, config.http_idle_timeout) == (2.5, 20.0)
    assert (config.max_connections, config.max_connections_per_address) == (100, 10)
    config_file.write_text("http:\n  header_timeout: 0\n")
    with pytest.raises(ValueError, match="http_header_timeout: expected a number of seconds > 0"):
        build_config(parser.parse_args(["--dev", "--config", str(config_file)]))
    config_file.write_text("http:\n  max_connections: lots\n")
    with pytest.raises(ValueError, match="http.max_connections: expected an integer"):
        build_config(parser.parse_args(["--dev", "--config", str(config_file)]))
    with pytest.raises(ValueError, match="max_connections_per_address"):
        ServerConfig.dev(max_connections_per_address=0).validate()


def argparse_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser
