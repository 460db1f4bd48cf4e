"""Fuzzed server-API calls (routes, methods, content types, bodies, tokens, oversized bodies) beside a live room:
every answer is a Twirp error or a result, none is an internal error, and the room keeps >= 90 % of its frames.

The fuzzer runs in its own process (``twirp_fuzzer.py``), as a misbehaving backend would: the server pays for
answering it, not for generating it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import kitewire
import pytest
from kitewire.server import Server
from kitewire.server.twirp import TWIRP_STATUS
from livekit import api

from .live_room import LiveRoom
from .room_service_support import api_token

pytestmark = pytest.mark.timeout(180)

_SEED = 20261202
_CALLS = 400
_AT_ONCE = 8
_FUZZER = Path(__file__).with_name("twirp_fuzzer.py")


async def _fuzz(server: Server, tokens: list[str | None]) -> list[tuple[int, str]]:
    options = {"url": server.http_url, "tokens": tokens, "seed": _SEED, "calls": _CALLS, "at_once": _AT_ONCE}
    env = dict(os.environ, PYTHONPATH=str(Path(kitewire.__file__).parents[1]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(_FUZZER),
        json.dumps(options),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return [(int(status), str(code)) for status, code in json.loads(stdout)]


async def test_fuzzed_calls_leave_a_live_room_streaming(server: Server, live_room: LiveRoom) -> None:
    admin = api_token(room_admin=True, room="fuzz", room_create=True, room_list=True)
    tokens: list[str | None] = [admin for _ in range(8)]
    tokens += [None, "not.a.token", admin[:-3] + "abc"]
    mark, started = live_room.mark(), time.monotonic()
    answers = await _fuzz(server, tokens)
    assert len(answers) == _CALLS
    for status, code in answers:
        if status in (200, -1):
            continue
        assert code in TWIRP_STATUS and TWIRP_STATUS[code] == status, (status, code)
        assert code != "internal", "a fuzzed call hit an internal error"
    codes = {code for _status, code in answers}
    # The fuzz reached past routing, auth and decoding.
    assert {"bad_route", "malformed", "unauthenticated", "invalid_argument", "not_found"} <= codes, codes
    await live_room.check_since(mark, started)
    assert sorted(server.rooms.rooms["live"].participants) == ["alice", "bob"]
    lkapi = api.LiveKitAPI(url=server.http_url, api_key="devkey", api_secret="secret")
    try:
        listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="live"))
        assert sorted(p.identity for p in listed.participants) == ["alice", "bob"]
    finally:
        await lkapi.aclose()
