"""The /agent worker protocol against kitewire's server, driven by a hand-written worker."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from kitewire.server import Server
from kitewire.signal import SignalClient, connect, create_token
from livekit import api
from livekit.protocol import agent as pb_agent
from livekit.protocol import models as pb_models

from .conftest import NewWorker
from .media import MovingPattern, kitewire_room
from .protocol_worker import ProtocolWorker, decode, worker_token

pytestmark = pytest.mark.timeout(60)


async def join(clients: list[SignalClient], server: Server, identity: str, room: str, token: str = "") -> SignalClient:
    client, _ = await connect(server.url, token or create_token("devkey", "secret", identity=identity, room=room))
    clients.append(client)
    return client


async def next_update(client: SignalClient, identity: str, timeout: float = 10.0) -> pb_models.ParticipantInfo:
    """The next ParticipantInfo about ``identity`` that ``client`` hears."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await client.recv(timeout=max(0.01, deadline - loop.time()))
        assert message is not None, f"connection closed while waiting for news of {identity}"
        if message.WhichOneof("message") == "update":
            for info in message.update.participants:
                if info.identity == identity:
                    return info


async def test_a_worker_token_without_the_agent_grant_is_refused(server: Server) -> None:
    for token in (worker_token(agent=False), create_token("devkey", "secret", identity="x", room="r"), "garbage"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await ProtocolWorker.connect(server.url, token)
        assert refused.value.status == 401
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(server.url + "/agent")
        assert refused.value.status == 401


async def test_the_register_response_comes_first_whatever_was_sent_before(server: Server) -> None:
    worker = await ProtocolWorker.connect(server.url)
    try:
        early = pb_agent.WorkerMessage()
        early.ping.timestamp = 5
        await worker.send(early)
        early = pb_agent.WorkerMessage()
        early.update_worker.status = pb_agent.WS_FULL
        await worker.send(early)
        await worker.ws.send_bytes(os.urandom(64))
        registered = await worker.register("named")
        assert registered.worker_id.startswith("AW_")
        assert registered.server_info.protocol > 0 and registered.server_info.node_id == server.node_id
        ping = pb_agent.WorkerMessage()
        ping.ping.timestamp = 1234
        await worker.send(ping)
        pong = await worker.next("pong")
        assert pong.pong.last_timestamp == 1234 and pong.pong.timestamp > 0
    finally:
        await worker.close()


async def test_a_worker_that_never_registers_is_disconnected(server: Server) -> None:
    server.agents.register_timeout = 0.5
    worker = await ProtocolWorker.connect(server.url)
    try:
        frame = await worker.ws.receive(timeout=10)
        assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert not server.agents.dispatcher.workers
    finally:
        await worker.close()


async def test_an_unnamed_worker_is_dispatched_to_a_new_room_and_its_agent_looks_like_one(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers("", can_publish=False)
    alice = await join(clients, server, "alice", "r1")
    offer = await worker.next("availability")
    job = offer.availability.job
    assert job.room.name == "r1" and job.type == pb_agent.JT_ROOM and job.agent_name == ""
    await worker.answer(job, identity="vision", attributes={"lk.agent.name": ""})
    assignment = (await worker.next("assignment")).assignment
    assert assignment.job.id == job.id and assignment.url == server.url
    claims = decode(assignment.token)
    assert claims["sub"] == "vision" and claims["kind"] == "agent"
    video = claims["video"]
    assert video["roomJoin"] and video["room"] == "r1" and video["agent"]
    assert video["canUpdateOwnMetadata"] and not video["canPublish"] and video["canSubscribe"]

    await join(clients, server, "vision", "r1", assignment.token)
    info = await next_update(alice, "vision")
    assert info.kind == pb_models.ParticipantInfo.AGENT
    assert "lk.agent.name" in info.attributes

    listed = await _list(server, "r1")
    assert [(d.agent_name, [j.state.participant_identity for j in d.state.jobs]) for d in listed] == [("", ["vision"])]
    assert listed[0].state.jobs[0].state.status == pb_agent.JS_RUNNING


async def _list(server: Server, room: str) -> list[api.AgentDispatch]:
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        return list(await lkapi.agent_dispatch.list_dispatch(room))


async def test_a_named_agent_comes_only_when_dispatched_through_the_api(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers("helper")
    await join(clients, server, "alice", "r2")
    with pytest.raises(TimeoutError):
        await worker.next("availability", timeout=1.5)
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        created = await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="helper", room="r2", metadata='{"task": 7}')
        )
        assert created.id.startswith("AD_") and created.agent_name == "helper" and created.metadata == '{"task": 7}'
        job = (await worker.next("availability")).availability.job
        assert job.dispatch_id == created.id and job.metadata == '{"task": 7}' and job.agent_name == "helper"
        await worker.answer(job, identity="helper-1")
        await worker.next("assignment")
        listed = await lkapi.agent_dispatch.list_dispatch("r2")
        assert [d.id for d in listed] == [created.id] and listed[0].metadata == '{"task": 7}'
        assert [j.id for j in listed[0].state.jobs] == [job.id]

        deleted = await lkapi.agent_dispatch.delete_dispatch(created.id, "r2")
        assert deleted.id == created.id and deleted.state.deleted_at > 0
        assert (await worker.next("termination")).termination.job_id == job.id
        assert await lkapi.agent_dispatch.list_dispatch("r2") == []
        with pytest.raises(api.TwirpError) as missing:
            await lkapi.agent_dispatch.delete_dispatch(created.id, "r2")
        assert missing.value.code == "not_found"


async def test_a_token_room_config_dispatches_its_agents(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers("helper")
    config = api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name="helper", metadata="from token")])
    token = (
        api.AccessToken("devkey", "secret")
        .with_identity("alice")
        .with_grants(api.VideoGrants(room_join=True, room="r3"))
        .with_room_config(config)
        .to_jwt()
    )
    await join(clients, server, "alice", "r3", token)
    job = (await worker.next("availability")).availability.job
    assert job.agent_name == "helper" and job.metadata == "from token" and job.room.name == "r3"


async def test_a_declined_or_unanswered_job_goes_to_the_next_worker(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    server.agents.dispatcher.availability_timeout = 1.0
    first, second, third = await workers(), await workers(), await workers()
    await first.status(pb_agent.WS_AVAILABLE, 0.1)
    await second.status(pb_agent.WS_AVAILABLE, 0.2)
    await third.status(pb_agent.WS_AVAILABLE, 0.3)
    await asyncio.sleep(0.3)
    await join(clients, server, "alice", "r4")
    job = (await first.next("availability")).availability.job
    await first.answer(job, available=False)
    # the second is asked next and stays silent past the timeout
    assert (await second.next("availability")).availability.job.id == job.id
    assert (await third.next("availability", timeout=5)).availability.job.id == job.id
    await third.answer(job, identity="taker")
    assert (await third.next("assignment")).assignment.job.id == job.id


async def test_a_full_worker_gets_no_jobs(server: Server, workers: NewWorker, clients: list[SignalClient]) -> None:
    full, free = await workers(), await workers()
    await full.status(pb_agent.WS_FULL, 0.0)
    await free.status(pb_agent.WS_AVAILABLE, 0.9)
    await asyncio.sleep(0.3)
    for index in range(3):
        await join(clients, server, f"p{index}", f"room-{index}")
        job = (await free.next("availability")).availability.job
        assert job.room.name == f"room-{index}"
        await free.answer(job, identity=f"agent-{index}")
        await free.next("assignment")
    with pytest.raises(TimeoutError):
        await full.next("availability", timeout=1.0)


async def test_a_worker_that_leaves_has_its_job_ended_its_agent_removed_and_the_job_offered_again(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers("helper")
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        await lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="helper", room="r5"))
        alice = await join(clients, server, "alice", "r5")
        job = (await worker.next("availability")).availability.job
        await worker.answer(job, identity="helper-agent")
        token = (await worker.next("assignment")).assignment.token
        await join(clients, server, "helper-agent", "r5", token)
        assert (await next_update(alice, "helper-agent")).kind == pb_models.ParticipantInfo.AGENT

        await worker.close()
        gone = await next_update(alice, "helper-agent")
        while gone.state != pb_models.ParticipantInfo.DISCONNECTED:
            gone = await next_update(alice, "helper-agent")
        [dispatch] = await lkapi.agent_dispatch.list_dispatch("r5")
        ended = next(j for j in dispatch.state.jobs if j.id == job.id)
        assert ended.state.status == pb_agent.JS_FAILED and "worker disconnected" in ended.state.error

        again = await workers("helper")
        retry = (await again.next("availability")).availability.job
        assert retry.dispatch_id == dispatch.id and retry.id != job.id and retry.room.name == "r5"


async def test_odd_worker_messages_cost_nothing(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    odd = await workers()
    bystander = await workers("bystander")
    unknown = pb_agent.Job(id="AJ_doesnotexist")
    await odd.answer(unknown)
    update = pb_agent.WorkerMessage()
    update.update_job.job_id = "AJ_nope"
    update.update_job.status = pb_agent.JS_SUCCESS
    await odd.send(update)
    bad_status = pb_agent.WorkerMessage()
    bad_status.update_worker.status = 77  # type: ignore[assignment]
    await odd.send(bad_status)
    again = pb_agent.WorkerMessage()
    again.register.agent_name = "other"
    await odd.send(again)
    await odd.ws.send_str("{not json")
    for size in (0, 1, 7, 300, 5000):
        await odd.ws.send_bytes(os.urandom(size))
    ping = pb_agent.WorkerMessage()
    ping.ping.timestamp = 99
    await odd.send(ping)
    assert (await odd.next("pong")).pong.last_timestamp == 99
    # the same worker is still dispatched normally, and nobody else noticed
    await join(clients, server, "alice", "r6")
    job = (await odd.next("availability")).availability.job
    assert job.room.name == "r6"
    with pytest.raises(TimeoutError):
        await bystander.next("availability", timeout=0.5)


async def test_a_job_whose_room_closes_is_terminated_and_other_rooms_carry_on(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers()
    alice = await join(clients, server, "alice", "gone")
    job = (await worker.next("availability")).availability.job
    await worker.answer(job, identity="never-joins")
    await worker.next("assignment")
    # the agent never joins; its room empties and closes
    await alice.close()
    assert (await worker.next("termination", timeout=10)).termination.job_id == job.id
    await join(clients, server, "bob", "stays")
    job2 = (await worker.next("availability")).availability.job
    assert job2.room.name == "stays"
    # an answer for the closed room's job is ignored; the new job is assigned as usual
    await worker.answer(job)
    await worker.answer(job2, identity="joins")
    assert (await worker.next("assignment")).assignment.job.id == job2.id


async def test_dispatch_api_refuses_bad_calls(server: Server) -> None:
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        with pytest.raises(api.TwirpError) as bad:
            await lkapi.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name="x", room="r", metadata="m" * 70_000)
            )
        assert bad.value.code == "invalid_argument"
        with pytest.raises(api.TwirpError) as bad:
            await lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="x", room=""))
        assert bad.value.code == "invalid_argument"
    async with aiohttp.ClientSession() as session:
        token = create_token("devkey", "secret", identity="u", room="r")
        async with session.post(
            server.http_url + "/twirp/livekit.AgentDispatchService/ListDispatch",
            json={"room": "r"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 403 and (await response.json())["code"] == "permission_denied"


async def test_publisher_workers_get_one_job_per_publishing_participant(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers("", job_type=pb_agent.JT_PUBLISHER)
    await join(clients, server, "watcher", "pub")
    # a participant that publishes nothing gets no publisher job
    with pytest.raises(TimeoutError):
        await worker.next("availability", timeout=1.5)
    async with kitewire_room(server, "cam", "pub") as publisher:
        camera = MovingPattern(publisher)
        await camera.start()
        try:
            job = (await worker.next("availability")).availability.job
            assert job.type == pb_agent.JT_PUBLISHER and job.participant.identity == "cam" and job.room.name == "pub"
            await worker.answer(job, identity="cam-agent")
            await worker.next("assignment")
        finally:
            await camera.stop()
    # the publisher left: its job ends
    assert (await worker.next("termination")).termination.job_id == job.id
    [dispatch] = await _list(server, "pub")
    assert [(j.participant.identity, j.state.status) for j in dispatch.state.jobs] == [("cam", pb_agent.JS_SUCCESS)]


async def test_participant_workers_get_one_job_per_participant_but_none_for_agents(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers("", job_type=pb_agent.JT_PARTICIPANT)
    await join(clients, server, "a", "part")
    first = (await worker.next("availability")).availability.job
    assert first.type == pb_agent.JT_PARTICIPANT and first.participant.identity == "a"
    await worker.answer(first, identity="agent-for-a")
    token = (await worker.next("assignment")).assignment.token
    await join(clients, server, "agent-for-a", "part", token)
    await join(clients, server, "b", "part")
    second = (await worker.next("availability")).availability.job
    assert second.participant.identity == "b"
    # the agent that joined is no participant to serve
    with pytest.raises(TimeoutError):
        await worker.next("availability", timeout=1.0)


async def test_a_room_made_by_create_room_gets_the_automatic_dispatch(server: Server, workers: NewWorker) -> None:
    worker = await workers()
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        created = await lkapi.room.create_room(api.CreateRoomRequest(name="made-by-api"))
    job = (await worker.next("availability")).availability.job
    assert job.room.name == "made-by-api" and job.room.sid == created.sid


async def test_a_never_restarted_dispatch_is_not_offered_again_after_its_worker_left(
    server: Server, workers: NewWorker, clients: list[SignalClient]
) -> None:
    worker = await workers("once")
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
        await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                agent_name="once", room="r-once", restart_policy=api.JobRestartPolicy.JRP_NEVER
            )
        )
    await join(clients, server, "alice", "r-once")
    job = (await worker.next("availability")).availability.job
    await worker.answer(job, identity="once-agent")
    await worker.next("assignment")
    await worker.close()
    again = await workers("once")
    with pytest.raises(TimeoutError):
        await again.next("availability", timeout=1.5)
