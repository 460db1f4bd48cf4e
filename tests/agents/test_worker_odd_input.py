"""Bad input on the agent side: fuzzed and out-of-order worker messages, oversized frames, bounds, bad tokens."""

from __future__ import annotations

import logging
import os
import random

import aiohttp
import jwt
import pytest
from kitewire.server import Server
from kitewire.server.agents.dispatcher import MAX_DISPATCHES_PER_ROOM
from kitewire.signal import SignalClient, SignalConnectError, connect, create_token
from livekit import api
from livekit.protocol import agent as pb_agent

from .conftest import NewWorker
from .test_worker_protocol import join

pytestmark = pytest.mark.timeout(90)

_TEXT = ["", "x", "AJ_", "AW_", "\u0000", "é" * 40, "a" * 3000]


def random_message(rng: random.Random, job_ids: list[str]) -> pb_agent.WorkerMessage:
    """One WorkerMessage of a random kind with random (often nonsensical) field values."""
    message = pb_agent.WorkerMessage()
    kind = rng.choice(
        ["register", "availability", "update_worker", "update_job", "ping", "simulate_job", "migrate_job"]
    )
    job_id = rng.choice([*job_ids, *_TEXT])
    if kind == "register":
        message.register.agent_name = rng.choice(_TEXT)
        message.register.type = rng.choice([0, 1, 2, 99])  # type: ignore[assignment]
    elif kind == "availability":
        message.availability.job_id = job_id
        message.availability.available = rng.random() < 0.5
        message.availability.terminate = rng.random() < 0.2
        message.availability.participant_identity = rng.choice(_TEXT)
        message.availability.participant_attributes[rng.choice(_TEXT)] = rng.choice(_TEXT)
    elif kind == "update_worker":
        message.update_worker.status = rng.choice([0, 1, 7, -3])  # type: ignore[assignment]
        message.update_worker.load = rng.choice([0.0, 0.5, 1.0, 1e30, -1.0, float("nan"), float("inf")])
        message.update_worker.job_count = rng.randrange(-5, 1 << 30)
    elif kind == "update_job":
        message.update_job.job_id = job_id
        message.update_job.status = rng.choice([0, 1, 2, 3, 4, 42])  # type: ignore[assignment]
        message.update_job.error = rng.choice(_TEXT)
    elif kind == "ping":
        message.ping.timestamp = rng.randrange(-(1 << 63), 1 << 63)
    elif kind == "simulate_job":
        message.simulate_job.room.name = rng.choice(_TEXT)
    else:
        message.migrate_job.job_ids.append(job_id)
    return message


async def test_fuzzed_and_out_of_order_worker_messages_leave_the_server_and_other_rooms_unaffected(
    server: Server, workers: NewWorker, clients: list[SignalClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kitewire.server")
    fuzzer = await workers()
    neighbour = await workers("neighbour")
    # a real job for the fuzzer, so its messages can name it (answering twice, reporting before assignment, ...)
    await join(clients, server, "alice", "fuzzed")
    job = (await fuzzer.next("availability")).availability.job
    rng = random.Random(14)
    for _ in range(400):
        await fuzzer.send(random_message(rng, [job.id]))
    for size in (1, 3, 100, 10_000):
        await fuzzer.ws.send_bytes(os.urandom(size))
    ping = pb_agent.WorkerMessage()
    ping.ping.timestamp = 7
    await fuzzer.send(ping)
    # the fuzzed pings were answered too: the last pong is for the last ping
    while (await fuzzer.next("pong", timeout=20)).pong.last_timestamp != 7:
        pass

    # another room's named agent is dispatched as usual
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        await lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="neighbour", room="calm"))
    await join(clients, server, "bob", "calm")
    calm = (await neighbour.next("availability")).availability.job
    await neighbour.answer(calm, identity="calm-agent")
    assignment = (await neighbour.next("assignment")).assignment
    assert assignment.job.id == calm.id and assignment.job.room.name == "calm"
    # nothing crashed on the way: refusals are warnings, never errors
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


async def test_answers_out_of_turn_are_ignored(server: Server, workers: NewWorker, clients: list[SignalClient]) -> None:
    worker = await workers()
    await join(clients, server, "alice", "turns")
    job = (await worker.next("availability")).availability.job
    # a status report before the job is assigned is refused
    early = pb_agent.WorkerMessage()
    early.update_job.job_id = job.id
    early.update_job.status = pb_agent.JS_SUCCESS
    await worker.send(early)
    await worker.answer(job, identity="first")
    await worker.answer(job, identity="second")
    assignment = (await worker.next("assignment")).assignment
    assert jwt.decode(assignment.token, options={"verify_signature": False})["sub"] == "first"
    # the job runs; the worker's own report ends it
    done = pb_agent.WorkerMessage()
    done.update_job.job_id = job.id
    done.update_job.status = pb_agent.JS_SUCCESS
    await worker.send(done)
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        for _ in range(100):
            [dispatch] = await lkapi.agent_dispatch.list_dispatch("turns")
            if dispatch.state.jobs[0].state.status == pb_agent.JS_SUCCESS:
                break
        assert [j.state.status for j in dispatch.state.jobs] == [pb_agent.JS_SUCCESS]


async def test_an_oversized_frame_disconnects_only_its_worker(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    big = await workers("big")
    other = await workers()
    await big.ws.send_bytes(b"\x0a" * (2 << 20))
    frame = await big.ws.receive(timeout=10)
    assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await join(clients, server, "alice", "after-big")
    assert (await other.next("availability")).availability.job.room.name == "after-big"
    assert {w.agent_name for w in server.agents.dispatcher.workers.values()} == {""}


async def test_dispatches_per_room_are_bounded(server: Server) -> None:
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        for index in range(MAX_DISPATCHES_PER_ROOM):
            await lkapi.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=f"a{index}", room="crowded")
            )
        with pytest.raises(api.TwirpError) as refused:
            await lkapi.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name="one-more", room="crowded")
            )
        assert refused.value.code == "resource_exhausted"
        # other rooms are not held back by a crowded one
        await lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a0", room="quiet"))
        assert len(await lkapi.agent_dispatch.list_dispatch("crowded")) == MAX_DISPATCHES_PER_ROOM


async def test_a_malformed_room_config_refuses_the_join_and_costs_nothing_else(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers()
    payload = jwt.decode(
        create_token("devkey", "secret", identity="alice", room="odd"), options={"verify_signature": False}
    )
    for room_config in ({"agents": "not a list"}, "not an object", {"agents": [{"agentName": 5}]}):
        payload["roomConfig"] = room_config
        with pytest.raises(SignalConnectError) as refused:
            await connect(server.url, jwt.encode(payload, "secret", algorithm="HS256"), legacy=False)
        assert refused.value.status == 401 and "roomConfig" in str(refused.value)
    assert "odd" not in server.rooms.rooms
    # the next room is created and dispatched as usual
    await join(clients, server, "alice", "fine")
    assert (await worker.next("availability")).availability.job.room.name == "fine"
