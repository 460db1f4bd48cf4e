"""The real livekit-agents (its own environment, tests/.venvs/agents) runs the example workers against kitewire.

Each test starts the worker with ``run_agent_worker``, the helper users test their own agents with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kitewire import rtc
from kitewire.server import Server
from kitewire.server.agents.testing import run_agent_worker
from livekit import api
from livekit.protocol import agent as pb_agent
from livekit.protocol import models as pb_models

from .media import FPS, MovingPattern, kitewire_room

pytestmark = [pytest.mark.timeout(240)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents"
VISION = EXAMPLES / "vision_agent.py"
ANNOTATE = EXAMPLES / "annotate_agent.py"


async def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.05)


def sfu_counts(server: Server) -> dict[str, object]:
    """Per published track: packets the server received and sent to each subscriber (for failure messages)."""
    counts: dict[str, object] = {}
    for room in server.rooms.rooms.values():
        for participant in room.participants.values():
            for sid, track in participant.published.items():
                sent = {sub: down.packets_sent for sub, down in track.downtracks.items()}
                counts[f"{participant.identity}/{sid}"] = (track.packets_received, sent)
    return counts


def agents_of(room: rtc.Room) -> list[rtc.RemoteParticipant]:
    return [p for p in room.remote_participants.values() if p.kind == pb_models.ParticipantInfo.AGENT]


async def test_the_vision_agent_measures_the_publishers_frames(server: Server, agents_python: Path) -> None:
    async with run_agent_worker(server, VISION, python=agents_python):
        async with kitewire_room(server, "camera-owner", "vision") as publisher:
            camera = MovingPattern(publisher)
            await camera.start()
            # dispatched within 2 s of the room's creation: the job is assigned (the server's part)
            async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
                await asyncio.sleep(2.0)
                [dispatch] = await lkapi.agent_dispatch.list_dispatch("vision")
            [job] = dispatch.state.jobs
            assert job.state.status == pb_agent.JS_RUNNING
            room_created_ms = publisher.creation_time.timestamp() * 1000
            assert job.state.started_at - room_created_ms <= 2000, (job.state.started_at, room_created_ms)

            # the publisher itself receives the agent's data packets
            figures: list[dict[str, Any]] = []

            def on_data(packet: rtc.DataPacket) -> None:
                if packet.topic == "vision.figures":
                    figures.append(json.loads(packet.data))

            publisher.on("data_received", on_data)
            await wait_for(lambda: figures, 90, "the agent's first figures")
            first_count, first_sent, first_wire = figures[-1]["frames"], camera.sent, await camera.frames_on_the_wire()
            await asyncio.sleep(10.0)
            packets = list(figures)
            last_count, last_sent, last_wire = packets[-1]["frames"], camera.sent, await camera.frames_on_the_wire()
            await camera.stop()
            captured, on_the_wire, read = last_sent - first_sent, last_wire - first_wire, last_count - first_count
            print(
                f"in 10 s: {captured} frames captured, {on_the_wire} encoded and sent, {read} read by the agent; "
                f"job assigned {job.state.started_at - room_created_ms:.0f} ms after the room was created"
            )
            assert captured >= 0.9 * 10 * FPS, f"the test camera itself captured only {captured} frames in 10 s"
            # the agent's part: what the publisher put on the wire reaches the agent and is read
            # (on a busy machine kitewire's encoder sends fewer than it is given: latest frame wins)
            assert read >= 0.9 * on_the_wire, f"the agent read {read} of the {on_the_wire} frames sent"
            # every frame read has its figures in exactly one packet, in order (from the first packet heard)
            per_frame = [f for packet in packets for f in packet["figures"]]
            assert [f["frame"] for f in per_frame] == list(range(per_frame[0]["frame"], last_count + 1))
            assert all(0.0 <= f["brightness"] <= 255.0 for f in per_frame)
            assert any(f["motion"] > 1.0 for f in per_frame), "a moving pattern shows motion"
            assert packets[-1]["participant"] == "camera-owner"

            # the agent looks like one to the publisher, and its attribute carries the figures
            [agent] = agents_of(publisher)
            await wait_for(
                lambda: int(agent.attributes.get("vision.frames", "0")) >= first_count, 10, "the frames attribute"
            )
            assert 0.0 <= float(agent.attributes["vision.brightness"]) <= 255.0
            assert agent.attributes.get("lk.agent.name", None) == ""


async def test_a_killed_worker_ends_its_job_and_the_dispatch_is_taken_again(
    server: Server, agents_python: Path
) -> None:
    async with kitewire_room(server, "camera-owner", "explicit") as publisher:
        camera = MovingPattern(publisher)
        await camera.start()
        try:
            async with run_agent_worker(server, VISION, python=agents_python, agent_name="vision-named") as first:
                async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lkapi:
                    # a named agent is not dispatched automatically
                    await asyncio.sleep(1.5)
                    assert await lkapi.agent_dispatch.list_dispatch("explicit") == []
                    assert agents_of(publisher) == []
                    dispatch = await lkapi.agent_dispatch.create_dispatch(
                        api.CreateAgentDispatchRequest(agent_name="vision-named", room="explicit", metadata="m1")
                    )
                    await wait_for(lambda: agents_of(publisher), 90, "the dispatched agent to join")
                    [agent] = agents_of(publisher)

                    first.kill()
                    await wait_for(lambda: agent.identity not in publisher.remote_participants, 30, "the agent to go")
                    statuses: list[int] = []

                    async def job_statuses() -> list[int]:
                        [listed] = await lkapi.agent_dispatch.list_dispatch("explicit")
                        assert listed.id == dispatch.id and listed.metadata == "m1"
                        return [j.state.status for j in listed.state.jobs]

                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 30
                    while loop.time() < deadline and (statuses := await job_statuses())[:1] != [pb_agent.JS_FAILED]:
                        await asyncio.sleep(0.1)
                    # the job failed; its replacement starts when a worker of that name is back
                    assert statuses == [pb_agent.JS_FAILED]

                    async with run_agent_worker(server, VISION, python=agents_python, agent_name="vision-named"):
                        await wait_for(lambda: agents_of(publisher), 90, "the job to be taken again")
                        assert await job_statuses() == [pb_agent.JS_FAILED, pb_agent.JS_RUNNING]
        finally:
            await camera.stop()


async def test_the_annotating_agent_publishes_an_annotated_copy_of_the_camera(
    server: Server, agents_python: Path
) -> None:
    async with run_agent_worker(server, ANNOTATE, python=agents_python):
        async with kitewire_room(server, "camera-owner", "annotate") as publisher:
            copies: asyncio.Queue[rtc.RemoteVideoTrack] = asyncio.Queue()

            def on_track(track: rtc.Track, publication: rtc.RemoteTrackPublication, _: rtc.RemoteParticipant) -> None:
                if isinstance(track, rtc.RemoteVideoTrack) and publication.name == "annotated-camera-owner":
                    copies.put_nowait(track)

            publisher.on("track_subscribed", on_track)
            camera = MovingPattern(publisher)
            await camera.start()
            try:
                copy = await asyncio.wait_for(copies.get(), 90)
                stream = rtc.VideoStream(copy, capacity=4, format=rtc.VideoBufferType.RGBA)
                checked = 0
                reading = asyncio.timeout(90)
                try:
                    async with reading:
                        async for event in stream:
                            pixels = event.frame.to_ndarray()
                            assert pixels.shape == (480, 640, 4)
                            if checked == 0 and float(pixels[..., :3].mean()) < 5.0:
                                continue  # black frames until the agent's first annotated one
                            border = np.concatenate(
                                [pixels[:6, :, :3].reshape(-1, 3), pixels[:, :6, :3].reshape(-1, 3)]
                            )
                            red, green, blue = border.astype(np.float32).mean(axis=0)
                            assert green > 180 and red < 80 and blue < 80, (red, green, blue)
                            # inside, the camera's own picture (its blue channel is a constant 128)
                            inside_blue = float(pixels[100:380, 200:440, 2].astype(np.float32).mean())
                            assert 100 < inside_blue < 156, inside_blue
                            checked += 1
                            if checked == 30:
                                break
                except TimeoutError:
                    raise AssertionError(
                        f"{checked} annotated frames in 90 s; the SFU saw {sfu_counts(server)}"
                    ) from None
                await stream.aclose()
            finally:
                await camera.stop()
