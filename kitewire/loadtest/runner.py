"""The load-test run: join everyone, wait until every subscriber receives every track, measure a window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from kitewire.bench.procfs import process_cpu_seconds, run_queue_wait_seconds
from kitewire.bench.server_process import EmbeddedServer
from kitewire.engine.wire import EngineError
from kitewire.signal import SignalConnectError, create_token

from .params import VIDEO_CODECS, LoadTestParams, LoadTestResult, TrackResult
from .participant import SimulatedParticipant
from .replay import EncodedLoop, Pacer, encode_loops, layer_plans

logger = logging.getLogger("kitewire.loadtest")


# Joins in flight at once: each one is a WebSocket, two DTLS handshakes and SDP
# work on the server; a burst of 200 would measure the join storm, not forwarding.
_JOIN_CONCURRENCY = 8
# Seconds per participant allowed for joining and negotiating.
_JOIN_TIMEOUT = 20.0
# Pause between "everyone receives" and the measuring window.
_SETTLE_SECONDS = 1.0


async def _join(
    participant: SimulatedParticipant,
    url: str,
    token: str,
    gate: asyncio.Semaphore,
    *,
    subscribe: bool,
    publish: Callable[[], Coroutine[Any, Any, str]] | None,
    single_pc: bool = False,
) -> None:
    async with gate:
        try:
            await participant.connect(url, token, subscribe=subscribe, timeout=_JOIN_TIMEOUT, single_pc=single_pc)
            if publish is not None:
                await publish()
        except (EngineError, SignalConnectError, ConnectionError, OSError, ValueError, TimeoutError) as exc:
            participant.error = f"could not connect: {exc or type(exc).__name__}"
        except Exception as exc:  # one broken participant must not end the whole run
            logger.debug("%s failed to join", participant.name, exc_info=True)
            participant.error = f"could not connect: {type(exc).__name__}: {exc}"


def _snapshot(subscribers: list[SimulatedParticipant]) -> dict[tuple[str, str], tuple[int, int, int, float, int]]:
    return {(sub.name, sid): counter.snapshot() for sub in subscribers for sid, counter in list(sub.counters.items())}


def _sent(publishers: list[SimulatedParticipant]) -> tuple[int, int, int]:
    layers = [layer for p in publishers for layer in p.layers]
    return (
        sum(layer.packets_sent for layer in layers),
        sum(layer.frames_sent for layer in layers),
        sum(layer.keyframes_sent for layer in layers),
    )


async def run_load_test(params: LoadTestParams, *, log: Callable[[str], None] = print) -> LoadTestResult:
    """Run one load test and return its counts (``log`` receives progress lines).

    Raises ValueError for bad parameters and RuntimeError when an embedded
    server cannot start. Everything it opened is closed before it returns.
    """
    params.validate()
    # The whole run is bounded, whatever the server does.
    budget = params.warmup + params.duration + 60.0 + 1.0 * (params.video_publishers + params.subscribers)
    async with contextlib.AsyncExitStack() as stack:
        url, server_pid = params.url, params.server_pid
        if params.embedded:
            server = EmbeddedServer()
            await server.start()
            stack.push_async_callback(server.stop)
            url, server_pid = server.url, server.pid
            log(f"Started kitewire serve (pid {server.pid}) at {url}")
        try:
            return await asyncio.wait_for(_encode_and_run(params, url, server_pid, stack, log), budget)
        except TimeoutError:
            raise TimeoutError(f"the load test did not finish within its {budget:g} s budget") from None


async def _encode_and_run(
    params: LoadTestParams,
    url: str,
    server_pid: int | None,
    stack: contextlib.AsyncExitStack,
    log: Callable[[str], None],
) -> LoadTestResult:
    started = time.monotonic()
    loops = await encode_loops(params)
    described = ", ".join(
        f"{rid or 'single'} {loop.width}x{loop.height}@{loop.framerate:g} {loop.kbps:.0f} kbps"
        for rid, loop in loops.items()
    )
    log(f"Encoded the {params.video_codec.upper()} loop once in {time.monotonic() - started:.1f} s: {described}")
    log(
        f"Starting load test with {params.video_publishers} video publishers, "
        f"{params.subscribers} subscribers, room: {params.room}"
    )
    return await _run_participants(params, url, server_pid, loops, stack, log)


async def _run_participants(
    params: LoadTestParams,
    url: str,
    server_pid: int | None,
    loops: dict[str, EncodedLoop],
    stack: contextlib.AsyncExitStack,
    log: Callable[[str], None],
) -> LoadTestResult:
    prefix = secrets.token_hex(3)
    plans = layer_plans(params)
    pacer = Pacer()
    stack.push_async_callback(pacer.stop)
    participants: list[SimulatedParticipant] = []

    async def close_all() -> None:
        await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)

    # Registered after the pacer: closed first, so nothing sends into closed connections.
    stack.push_async_callback(close_all)
    gate = asyncio.Semaphore(_JOIN_CONCURRENCY)

    def token_for(identity: str, *, publisher: bool) -> str:
        return create_token(
            params.api_key,
            params.api_secret,
            identity=identity,
            room=params.room,
            name=identity,
            can_publish=publisher,
            can_subscribe=not publisher,
            ttl=3600,
        )

    publishers = [SimulatedParticipant(f"Pub {i}", f"{prefix}_pub_{i}") for i in range(params.video_publishers)]
    subscribers = [SimulatedParticipant(f"Sub {i}", f"{prefix}_sub_{i}") for i in range(params.subscribers)]
    participants.extend(publishers)
    participants.extend(subscribers)

    def publish_job(participant: SimulatedParticipant) -> Callable[[], Coroutine[Any, Any, str]]:
        return lambda: participant.publish(
            loops, plans, params.simulcast, pacer, _JOIN_TIMEOUT, VIDEO_CODECS[params.video_codec]
        )

    # Publishers first, so each subscriber gets every track in its first offer.
    await asyncio.gather(
        *(
            _join(p, url, token_for(p.identity, publisher=True), gate, subscribe=False, publish=publish_job(p))
            for p in publishers
        )
    )
    working_publishers = [p for p in publishers if p.error is None]
    for p in publishers:
        if p.error is not None:
            log(f"{p.name}: {p.error}")
    await asyncio.gather(
        *(
            _join(
                s,
                url,
                token_for(s.identity, publisher=False),
                gate,
                subscribe=True,
                publish=None,
                single_pc=params.single_pc,
            )
            for s in subscribers
        )
    )
    for s in subscribers:
        if s.error is not None:
            log(f"{s.name}: {s.error}")
    expected = len(working_publishers)
    if not working_publishers:
        log("No publisher could publish: nothing to forward, nothing measured")
        return LoadTestResult(
            params=params,
            tracks=[],
            subscribers=[s.name for s in subscribers],
            expected_tracks=params.video_publishers,
            window_seconds=0.0,
            errors={p.name: p.error for p in participants if p.error is not None},
            server_pid=server_pid,
        )

    # Warm-up: until every connected subscriber receives every working track.
    deadline = time.monotonic() + params.warmup
    while time.monotonic() < deadline:
        if all(s.error is not None or s.tracks_receiving() >= expected for s in subscribers):
            break
        await asyncio.sleep(0.1)
    waiting = [s.name for s in subscribers if s.error is None and s.tracks_receiving() < expected]
    if waiting:
        log(f"Still waiting for media after {params.warmup:g} s: {', '.join(waiting[:10])}; measuring anyway")
    # Late joiners' keyframe requests are still being answered; let them pass.
    await asyncio.sleep(_SETTLE_SECONDS)
    log(f"Finished connecting to room {params.room}, measuring for {params.duration:g} s")

    for sub in subscribers:
        for counter in list(sub.counters.values()):
            counter.latency_max = 0.0
    before = _snapshot(subscribers)
    sent_before = _sent(publishers)
    forwarded_before = {p.track_sid: p.layers[-1].packets_sent for p in publishers if p.layers}
    cpu_before = process_cpu_seconds(server_pid) if server_pid is not None else None
    wait_before = run_queue_wait_seconds(server_pid) if server_pid is not None else None
    client_wait_before = run_queue_wait_seconds(os.getpid())
    client_before = time.process_time()
    window_start = time.monotonic()
    await asyncio.sleep(params.duration)
    after = _snapshot(subscribers)
    sent_after = _sent(publishers)
    # Subscribers get the top layer (the server's default for a simulcast track).
    forwarded = {
        p.track_sid: p.layers[-1].packets_sent - forwarded_before.get(p.track_sid, 0) for p in publishers if p.layers
    }
    maxima = {
        (sub.name, sid): counter.latency_max for sub in subscribers for sid, counter in list(sub.counters.items())
    }
    cpu_after = process_cpu_seconds(server_pid) if server_pid is not None else None
    client_cpu = time.process_time() - client_before
    wait_after = run_queue_wait_seconds(server_pid) if server_pid is not None else None
    client_wait_after = run_queue_wait_seconds(os.getpid())
    window = time.monotonic() - window_start

    tracks: list[TrackResult] = []
    for key, (packets, payload, lost, latency_sum, latency_count) in sorted(after.items()):
        p0, b0, l0, s0, c0 = before.get(key, (0, 0, 0, 0.0, 0))
        samples = latency_count - c0
        tracks.append(
            TrackResult(
                key[0],
                key[1],
                packets - p0,
                payload - b0,
                max(0, lost - l0),
                window,
                expected=forwarded.get(key[1], 0),
                mean_latency_ms=1000.0 * (latency_sum - s0) / samples if samples else None,
                max_latency_ms=1000.0 * maxima.get(key, 0.0) if samples else None,
            )
        )
    errors = {p.name: p.error for p in participants if p.error is not None}
    return LoadTestResult(
        params=params,
        tracks=tracks,
        subscribers=[s.name for s in subscribers],
        # A publisher that failed still counts: its track is missing everywhere.
        expected_tracks=params.video_publishers,
        window_seconds=window,
        errors=errors,
        publisher_packets=sent_after[0] - sent_before[0],
        publisher_frames=sent_after[1] - sent_before[1],
        publisher_keyframes=sent_after[2] - sent_before[2],
        server_pid=server_pid,
        server_cpu_seconds=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        client_cpu_seconds=client_cpu,
        server_wait_seconds=None if wait_before is None or wait_after is None else wait_after - wait_before,
        client_wait_seconds=(
            None if client_wait_before is None or client_wait_after is None else client_wait_after - client_wait_before
        ),
    )
