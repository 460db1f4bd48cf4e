"""A Twirp fuzzer run as its own process (so its CPU is not the server's event loop, as with a real client).

``python twirp_fuzzer.py <json>`` with ``{"url", "tokens", "seed", "calls", "at_once"}`` prints one JSON
list of ``[status, code]`` per call: status -1 when the connection was cut (an oversized body may be
answered before it is all sent), code "" for a 200 and "<not a Twirp error ...>" for a non-Twirp answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from dataclasses import dataclass

import aiohttp
from kitewire.server.limits import MAX_TWIRP_BODY_BYTES
from kitewire.server.room_service import ROOM_SERVICE
from livekit.protocol import room as pb_room

CALLS = 400
_SERVICES = ["livekit.RoomService", "livekit.Egress", "livekit.SIP", "livekit.Ingress", "livekit.Nope", "", "a.b.c"]
_CONTENT_TYPES = ["application/protobuf", "application/json", "application/json; charset=utf-8", "text/html", ""]


@dataclass
class _Call:
    verb: str
    path: str
    content_type: str
    body: bytes
    token: str | None


def _valid_bodies() -> list[bytes]:
    """One well-formed request per RoomService method, all about the room "fuzz" (mutations start from these)."""
    return [
        pb_room.CreateRoomRequest(name="fuzz", empty_timeout=5, metadata="m").SerializeToString(),
        pb_room.ListRoomsRequest(names=["fuzz", "x"]).SerializeToString(),
        pb_room.DeleteRoomRequest(room="fuzz").SerializeToString(),
        pb_room.UpdateParticipantRequest(
            room="fuzz", identity="p", metadata="x", attributes={"a": "b"}
        ).SerializeToString(),
        pb_room.SendDataRequest(room="fuzz", data=b"d" * 40, topic="t", nonce=b"n" * 16).SerializeToString(),
        pb_room.UpdateSubscriptionsRequest(room="fuzz", identity="p", track_sids=["TR_a"] * 4).SerializeToString(),
        pb_room.MuteRoomTrackRequest(room="fuzz", identity="p", track_sid="TR_a", muted=True).SerializeToString(),
    ]


def _random_json(rng: random.Random) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:
        depth = rng.choice([50, 5000, 50000])
        return ("[" * depth + "]" * depth).encode()
    if choice == 1:
        return json.dumps({"room": "fuzz", "names": rng.choice([5, "x", [1, 2], None, {"a": 1}])}).encode()
    if choice == 2:
        return json.dumps({"name": "fuzz", "emptyTimeout": rng.choice([-1, 2**40, "x", 1.5, True])}).encode()
    if choice == 3:
        return json.dumps({"room": "fuzz", "data": rng.choice(["!!notbase64", "AAAA", 7])}).encode()
    if choice == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    return json.dumps([rng.random() for _ in range(rng.randrange(20))]).encode()


def _mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randrange(1, 6)):
        if data and rng.random() < 0.6:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif data and rng.random() < 0.5:
            del data[rng.randrange(len(data)) :]
        else:
            data[rng.randrange(len(data) + 1) : 0] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
    return bytes(data)


def make_calls(rng: random.Random, tokens: list[str | None], count: int = CALLS) -> list[_Call]:
    """Mostly well-routed calls with broken bodies (so the fuzz reaches decoding and the handlers), some not."""
    methods = list(ROOM_SERVICE.methods_by_name)
    odd_methods = ["ListEgress", "Nope", "", "\u00e9", "x" * 300]
    valid = _valid_bodies()
    calls = []
    for _ in range(count):
        service = "livekit.RoomService" if rng.random() < 0.8 else rng.choice(_SERVICES)
        method = rng.choice(methods) if rng.random() < 0.9 else rng.choice(odd_methods)
        path = f"/twirp/{service}/{method}"
        if rng.random() < 0.03:
            path = "/twirp/" + "".join(rng.choice("abc./%_") for _ in range(rng.randrange(1, 80)))
        kind = rng.random()
        if kind < 0.15:
            # Well-formed, though often sent to another method (protobuf then reads it as unknown fields).
            body = rng.choice(valid)
        elif kind < 0.5:
            body = _mutate(rng, rng.choice(valid))
        elif kind < 0.7:
            body = _random_json(rng)
        elif kind < 0.75:
            body = b"\x00" * (MAX_TWIRP_BODY_BYTES + rng.randrange(1, 1024 * 1024))
        else:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 2048)))
        if b"live" in body:
            # Only the fuzz room is fair game: the live room must stream on.
            body = body.replace(b"live", b"lxve")
        verb = "POST" if rng.random() < 0.95 else rng.choice(["GET", "PUT", "DELETE", "PATCH"])
        content_type = _CONTENT_TYPES[rng.randrange(2)] if rng.random() < 0.9 else rng.choice(_CONTENT_TYPES)
        calls.append(_Call(verb, path, content_type, body, rng.choice(tokens)))
    return calls


async def send(session: aiohttp.ClientSession, url: str, call: _Call) -> tuple[int, str]:
    headers = {"Content-Type": call.content_type} if call.content_type else {}
    if call.token is not None:
        headers["Authorization"] = f"Bearer {call.token}"
    try:
        async with session.request(call.verb, url + call.path, data=call.body, headers=headers) as response:
            raw = await response.read()
    except aiohttp.ClientError:
        # An oversized body may be answered and cut off before it is all sent.
        return -1, ""
    if response.status == 200:
        # A call the fuzz made well-formed by chance; it answered.
        return 200, ""
    try:
        code = json.loads(raw)["code"]
    except (ValueError, KeyError, TypeError):
        return response.status, f"<not a Twirp error: {raw[:80]!r}>"
    return response.status, str(code)


async def run(url: str, tokens: list[str | None], seed: int, calls: int, at_once: int) -> list[tuple[int, str]]:
    """Send ``calls`` fuzzed calls to ``url``, ``at_once`` at a time; their (status, code)."""
    rng = random.Random(seed)
    planned = make_calls(rng, tokens, calls)
    answers: list[tuple[int, str]] = []
    limit = asyncio.Semaphore(at_once)
    async with aiohttp.ClientSession() as session:

        async def one(call: _Call) -> None:
            async with limit:
                answers.append(await send(session, url, call))

        await asyncio.gather(*(one(call) for call in planned))
    return answers


if __name__ == "__main__":
    options = json.loads(sys.argv[1])
    result = asyncio.run(run(options["url"], options["tokens"], options["seed"], options["calls"], options["at_once"]))
    print(json.dumps(result))
