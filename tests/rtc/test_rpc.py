"""RPC between kitewire and the official SDK both ways and kitewire to kitewire: answers,
errors, unknown methods, timeouts, a participant leaving mid-call, and a flood."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from data_peers import Peers, peers, warm_up
from kitewire import rtc
from kitewire.rtc import _rpc
from kitewire.rtc._rpc import MAX_PAYLOAD_BYTES
from livekit import rtc as lk

__all__ = ["peers"]

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")]

RUNNING_BOUND = 8
PENDING_BOUND = 16
PAIRS = [("kitewire", "official"), ("official", "kitewire"), ("kitewire", "kitewire")]


async def _pair(peers: Peers, caller_kind: str, callee_kind: str) -> tuple[Any, Any]:
    callee, caller = await peers.pair((callee_kind, "callee"), (caller_kind, "caller"))
    return caller, callee


def _error_type(room: Any) -> Any:
    return rtc.RpcError if isinstance(room, rtc.Room) else lk.RpcError


@pytest.mark.parametrize(("caller_kind", "callee_kind"), PAIRS)
async def test_answers_errors_and_unknown_methods(peers: Peers, caller_kind: str, callee_kind: str) -> None:
    caller, callee = await _pair(peers, caller_kind, callee_kind)
    error_type = _error_type(callee)
    seen: list[tuple[str, str, str, float]] = []

    async def echo(data: Any) -> str:
        seen.append((data.caller_identity, data.method, data.request_id, data.response_timeout))
        return f"{data.caller_identity}:{data.payload}"

    def sync_upper(data: Any) -> str:
        return str(data.payload).upper()

    async def custom_failure(data: Any) -> str:
        raise error_type(4242, "custom failure", "details")

    async def crash(data: Any) -> str:
        raise KeyError("boom")

    local: Any = callee.local_participant
    local.register_rpc_method("echo", echo)
    local.register_rpc_method("upper", sync_upper)
    local.register_rpc_method("fail", custom_failure)
    local.register_rpc_method("crash", crash)
    calling: Any = caller.local_participant

    async def call(method: str, payload: str = "", **options: Any) -> str:
        return str(await calling.perform_rpc(destination_identity="callee", method=method, payload=payload, **options))

    assert await call("echo", "ping", response_timeout=10.0) == "caller:ping"
    # both SDKs tell the callee the timeout less the 7 s round-trip allowance
    assert seen[0][:2] == ("caller", "echo") and seen[0][2] and seen[0][3] == pytest.approx(3.0)
    assert await call("upper", "héllo") == "HÉLLO"
    big = "é" * (MAX_PAYLOAD_BYTES // 2 - 1)  # just under the limit in UTF-8 bytes
    assert await call("upper", big) == big.upper()
    with pytest.raises(_error_type(caller)) as failure:
        await call("fail")
    assert (failure.value.code, failure.value.message, failure.value.data) == (4242, "custom failure", "details")
    with pytest.raises(_error_type(caller)) as crashed:
        await call("crash")
    assert crashed.value.code == 1500  # APPLICATION_ERROR
    with pytest.raises(_error_type(caller)) as unknown:
        await call("missing")
    assert unknown.value.code == 1400  # UNSUPPORTED_METHOD
    local.unregister_rpc_method("echo")
    with pytest.raises(_error_type(caller)) as gone:
        await call("echo")
    assert gone.value.code == 1400


@pytest.mark.parametrize(("caller_kind", "callee_kind"), PAIRS)
async def test_a_slow_handler_times_out(peers: Peers, caller_kind: str, callee_kind: str) -> None:
    caller, callee = await _pair(peers, caller_kind, callee_kind)
    release = asyncio.Event()

    async def slow(data: Any) -> str:
        await release.wait()
        return "late"

    local: Any = callee.local_participant
    local.register_rpc_method("slow", slow)
    calling: Any = caller.local_participant
    with pytest.raises(_error_type(caller)) as timed_out:
        await calling.perform_rpc(destination_identity="callee", method="slow", payload="", response_timeout=1.5)
    assert timed_out.value.code == 1502  # RESPONSE_TIMEOUT
    release.set()
    # the room still works: a quick call after the slow one
    local.register_rpc_method("quick", lambda data: "ok")
    assert await calling.perform_rpc(destination_identity="callee", method="quick", payload="") == "ok"


async def test_kitewire_caller_errors_without_a_callee(peers: Peers) -> None:
    caller = await peers.kitewire("caller")
    official = await peers.official("bystander")
    await warm_up([caller, official])
    local = caller.local_participant
    with pytest.raises(rtc.RpcError) as nobody:
        await local.perform_rpc(
            destination_identity="nobody", method="x", payload="", response_timeout=3.0, max_round_trip_latency=1.0
        )
    assert nobody.value.code == rtc.RpcError.ErrorCode.CONNECTION_TIMEOUT
    with pytest.raises(rtc.RpcError) as too_big:
        await local.perform_rpc(destination_identity="bystander", method="x", payload="x" * (MAX_PAYLOAD_BYTES + 1))
    assert too_big.value.code == rtc.RpcError.ErrorCode.REQUEST_PAYLOAD_TOO_LARGE


async def test_a_callee_leaving_mid_call_fails_the_call(peers: Peers) -> None:
    caller, callee = await _pair(peers, "kitewire", "official")
    started = asyncio.Event()

    async def hang(data: Any) -> str:
        started.set()
        await asyncio.sleep(30)
        return ""

    local: Any = callee.local_participant
    local.register_rpc_method("hang", hang)
    call = asyncio.ensure_future(
        caller.local_participant.perform_rpc(destination_identity="callee", method="hang", payload="")
    )
    await asyncio.wait_for(started.wait(), 10)
    await callee.disconnect()
    with pytest.raises(rtc.RpcError) as left:
        await asyncio.wait_for(call, 15)
    assert left.value.code == rtc.RpcError.ErrorCode.RECIPIENT_DISCONNECTED


async def test_a_flood_is_bounded_and_the_callee_keeps_answering(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> None:
    # the bounds are lowered so the flood stays small; the code reads them at each call
    monkeypatch.setattr(_rpc, "MAX_RUNNING_HANDLERS", RUNNING_BOUND)
    caller, callee = await _pair(peers, "official", "kitewire")
    release = asyncio.Event()
    running = 0
    most = 0

    async def hold(data: rtc.RpcInvocationData) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await release.wait()
        finally:
            running -= 1
        return "held"

    callee.local_participant.register_rpc_method("hold", hold)
    calling: Any = caller.local_participant
    flood = 3 * RUNNING_BOUND
    calls = [
        asyncio.ensure_future(
            calling.perform_rpc(destination_identity="callee", method="hold", payload=str(i), response_timeout=20.0)
        )
        for i in range(flood)
    ]
    # the calls beyond the bound are refused at once, while the first ones still run
    for _ in range(200):
        if sum(1 for c in calls if c.done()) >= flood - RUNNING_BOUND:
            break
        await asyncio.sleep(0.05)
    refused = [c for c in calls if c.done()]
    assert len(refused) == flood - RUNNING_BOUND
    for c in refused:
        error = c.exception()
        assert isinstance(error, lk.RpcError) and error.code == 1500 and "at most" in error.message
    assert most == RUNNING_BOUND
    release.set()
    answers = await asyncio.wait_for(asyncio.gather(*[c for c in calls if not c.done()]), 20)
    assert answers == ["held"] * RUNNING_BOUND
    callee.local_participant.register_rpc_method("after", lambda data: "still here")
    assert await calling.perform_rpc(destination_identity="callee", method="after", payload="") == "still here"


async def test_interceptors_wrap_both_directions(peers: Peers) -> None:
    caller, callee = await _pair(peers, "kitewire", "kitewire")
    log: list[str] = []

    class Tag(rtc.RpcInterceptor):
        def __init__(self, name: str) -> None:
            self.name = name

        async def intercept_outgoing(self, call: rtc.RpcCallInfo, next: Any) -> str:
            log.append(f"{self.name}>out")
            return str(await next(call))

        async def intercept_incoming(self, invocation: rtc.RpcInvocationData, next: Any) -> str | None:
            log.append(f"{self.name}>in:{invocation.method}")
            answer = await next(invocation)
            return None if answer is None else f"[{answer}]"

    callee.local_participant.add_rpc_interceptor(Tag("callee"))
    caller.local_participant.add_rpc_interceptor(Tag("outer"))
    caller.local_participant.add_rpc_interceptor(Tag("inner"))

    callee_room: rtc.Room = callee

    @callee_room.local_participant.register_rpc_method("hi")
    def hi(data: rtc.RpcInvocationData) -> str:
        return "hi"

    answer = await caller.local_participant.perform_rpc(destination_identity="callee", method="hi", payload="")
    assert answer == "[hi]"
    assert log == ["outer>out", "inner>out", "callee>in:hi"]


async def test_outgoing_calls_are_bounded(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rpc, "MAX_PENDING_CALLS", PENDING_BOUND)
    caller, callee = await _pair(peers, "kitewire", "official")
    release = asyncio.Event()

    async def hold(data: Any) -> str:
        await release.wait()
        return "done"

    callee_local: Any = callee.local_participant
    callee_local.register_rpc_method("hold", hold)
    calls = [
        asyncio.ensure_future(
            caller.local_participant.perform_rpc(destination_identity="callee", method="hold", payload="")
        )
        for _ in range(PENDING_BOUND + 3)
    ]
    await asyncio.sleep(0.5)
    refused = [c for c in calls if c.done()]
    assert len(refused) == 3
    for c in refused:
        error = c.exception()
        assert isinstance(error, rtc.RpcError) and error.code == rtc.RpcError.ErrorCode.SEND_FAILED
        assert f"at most {PENDING_BOUND}" in error.message
    release.set()
    answers = await asyncio.wait_for(asyncio.gather(*[c for c in calls if c not in refused]), 30)
    assert answers == ["done"] * PENDING_BOUND


async def test_a_server_older_than_1_8_is_told_apart_like_the_official_sdk_does(
    peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitewire.server import version

    monkeypatch.setattr(version, "LIVEKIT_COMPATIBLE_VERSION", "1.7.2")
    kite = await peers.kitewire("kite")
    official = await peers.official("official")
    with pytest.raises(rtc.RpcError) as ours:
        await kite.local_participant.perform_rpc(destination_identity="official", method="m", payload="")
    with pytest.raises(lk.RpcError) as theirs:
        await official.local_participant.perform_rpc(destination_identity="kite", method="m", payload="")
    assert ours.value.code == theirs.value.code == rtc.RpcError.ErrorCode.UNSUPPORTED_SERVER
