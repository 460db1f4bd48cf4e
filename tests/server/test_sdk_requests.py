"""Requests the official SDK waits on (RequestResponse) and the features it gates on the server version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from kitewire.server import Server
from kitewire.server.version import LIVEKIT_COMPATIBLE_VERSION
from livekit import rtc

from .conftest import Connect

pytestmark = pytest.mark.timeout(90)

# The SDK gives up waiting for a RequestResponse after 5 s; answered, a loopback
# round trip takes milliseconds. Anything near 5 s means the answer never came.
_ANSWERED_WITHIN = 2.0


def _watch(room: Any, event: str) -> asyncio.Queue[tuple[Any, ...]]:
    queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def record(*args: Any) -> None:
        queue.put_nowait(args)

    room.on(event, record)
    return queue


async def _timed(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    await call()
    return time.monotonic() - started


async def test_set_metadata_name_and_attributes_are_answered_and_seen(server: Server, sdk_rooms: Connect) -> None:
    watcher = await sdk_rooms("watcher")
    metadata, names, attributes = (
        _watch(watcher, "participant_metadata_changed"),
        _watch(watcher, "participant_name_changed"),
        _watch(watcher, "participant_attributes_changed"),
    )
    actor = await sdk_rooms("actor", can_update_own_metadata=True)
    local = actor.local_participant

    assert await _timed(lambda: local.set_metadata("meta-1")) < _ANSWERED_WITHIN
    participant, old, new = await asyncio.wait_for(metadata.get(), 10)
    assert (participant.identity, old, new) == ("actor", "", "meta-1")

    assert await _timed(lambda: local.set_name("Actor Name")) < _ANSWERED_WITHIN
    participant, old, new = await asyncio.wait_for(names.get(), 10)
    assert (participant.identity, old, new) == ("actor", "actor", "Actor Name")

    assert await _timed(lambda: local.set_attributes({"mood": "calm", "role": "lead"})) < _ANSWERED_WITHIN
    changed, participant = await asyncio.wait_for(attributes.get(), 10)
    assert participant.identity == "actor"
    assert changed == {"mood": "calm", "role": "lead"}
    assert watcher.remote_participants["actor"].attributes == {"mood": "calm", "role": "lead"}


async def test_a_refused_update_is_answered_at_once(server: Server, sdk_rooms: Connect) -> None:
    # No canUpdateOwnMetadata: the server refuses with a RequestResponse, so the SDK does not wait 5 s.
    actor = await sdk_rooms("actor")
    started = time.monotonic()
    try:
        await actor.local_participant.set_metadata("nope")
    except Exception:
        pass
    assert time.monotonic() - started < _ANSWERED_WITHIN


async def test_rpc_round_trips_between_official_clients(server: Server, sdk_rooms: Connect) -> None:
    callee = await sdk_rooms("callee")
    caller = await sdk_rooms("caller")

    # livekit's register_rpc_method is typed too narrowly for mypy to accept a handler
    callee_local: Any = callee.local_participant

    async def echo(data: rtc.RpcInvocationData) -> str:
        return f"{data.caller_identity}:{data.payload}"

    async def fail(data: rtc.RpcInvocationData) -> str:
        raise rtc.RpcError(4242, "custom failure", "extra")

    callee_local.register_rpc_method("echo", echo)
    callee_local.register_rpc_method("fail", fail)

    # the data channels come up shortly after the join: retry the first call
    for _ in range(20):
        try:
            answer = await caller.local_participant.perform_rpc(
                destination_identity="callee", method="echo", payload="ping", response_timeout=3.0
            )
            break
        except rtc.RpcError as exc:
            if exc.code != rtc.RpcError.ErrorCode.CONNECTION_TIMEOUT:
                raise
    else:
        raise AssertionError("no RPC ever reached the callee")
    assert answer == "caller:ping"

    with pytest.raises(rtc.RpcError) as unknown:
        await caller.local_participant.perform_rpc(destination_identity="callee", method="missing", payload="")
    assert unknown.value.code == 1400  # UNSUPPORTED_METHOD

    with pytest.raises(rtc.RpcError) as custom:
        await caller.local_participant.perform_rpc(destination_identity="callee", method="fail", payload="")
    assert (custom.value.code, custom.value.message, custom.value.data) == (4242, "custom failure", "extra")


async def test_the_join_reports_a_livekit_version_and_kitewire_itself(server: Server, sdk_rooms: Connect) -> None:
    from kitewire import __version__
    from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, connect, create_token

    signal, join = await connect(
        server.url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="probe", room="room"), timeout=10
    )
    try:
        assert join.server_version == join.server_info.version == LIVEKIT_COMPATIBLE_VERSION
        major, minor, _ = (int(part) for part in LIVEKIT_COMPATIBLE_VERSION.split("."))
        assert (major, minor) >= (1, 8)  # the official SDKs' RPC needs 1.8.0
        assert join.server_info.debug_info == f"kitewire {__version__}"
        assert join.server_info.protocol > 0
    finally:
        await signal.close(leave=True)


async def test_data_tracks_are_refused_at_once_with_the_reason(server: Server, sdk_rooms: Connect) -> None:
    room = await sdk_rooms("publisher")
    started = time.monotonic()
    with pytest.raises(rtc.participant.PublishDataTrackError, match="data tracks are not supported"):
        await room.local_participant.publish_data_track(name="telemetry")
    # the SDK waits 10 s for an answer that does not come
    assert time.monotonic() - started < _ANSWERED_WITHIN
