"""Data-side figures through ``kitewire serve``: kitewire beside the official SDK (the anchor).

For each sender -> receiver pair (official -> official first: the anchor), in
one run against one server in a child process: the median ``set_metadata``
round trip (request to the server's RequestResponse), the median RPC round
trip (``perform_rpc`` of an echo), and the throughput of one byte stream of
``--megabytes`` MB (``send_bytes`` until the receiver has read it all). Run:
``python -m kitewire.bench.data`` (needs the test extra: the official ``livekit`` SDK).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from typing import Any

from .server_process import EmbeddedServer

__all__ = ["main", "run_benchmark"]

KINDS = ("official", "kitewire")


def _token(identity: str, room: str) -> str:
    from livekit import api

    grants = api.VideoGrants(
        room_join=True, room=room, can_publish=True, can_subscribe=True, can_update_own_metadata=True
    )
    token = api.AccessToken("devkey", "secret").with_identity(identity).with_grants(grants)
    return token.to_jwt()


async def _join(kind: str, url: str, identity: str, room: str) -> Any:
    if kind == "kitewire":
        from kitewire import rtc

        kite = rtc.Room()
        await asyncio.wait_for(kite.connect(url, _token(identity, room)), 30)
        return kite
    from livekit import rtc as lk

    official = lk.Room()
    await asyncio.wait_for(official.connect(url, _token(identity, room)), 30)
    return official


async def _median_ms(call: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _measure_pair(url: str, sender_kind: str, receiver_kind: str, repeats: int, megabytes: int) -> list[float]:
    room = f"bench-{sender_kind}-{receiver_kind}"
    receiver = await _join(receiver_kind, url, "receiver", room)
    sender = await _join(sender_kind, url, "sender", room)
    done: asyncio.Queue[int] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()

    async def read(reader: Any) -> None:
        size = 0
        async for chunk in reader:
            size += len(chunk)
        done.put_nowait(size)

    def on_stream(reader: Any, identity: str) -> None:
        task = asyncio.ensure_future(read(reader))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        receiver.local_participant.register_rpc_method("echo", lambda data: data.payload)
        receiver.register_byte_stream_handler("bench", on_stream)
        # the data channels open shortly after the join: the first call may need retries
        for _ in range(50):
            with contextlib.suppress(Exception):
                await sender.local_participant.perform_rpc(
                    destination_identity="receiver", method="echo", payload="warm", response_timeout=2.0
                )
                break
        metadata = await _median_ms(lambda: sender.local_participant.set_metadata(str(time.time())), repeats)
        rpc = await _median_ms(
            lambda: sender.local_participant.perform_rpc(destination_identity="receiver", method="echo", payload="x"),
            repeats,
        )
        payload = os.urandom(megabytes * 1024 * 1024)
        started = time.perf_counter()
        await sender.local_participant.send_bytes(payload, topic="bench", name="bench.bin")
        received = await asyncio.wait_for(done.get(), 600)
        seconds = time.perf_counter() - started
        if received != len(payload):
            raise RuntimeError(f"the receiver read {received} of {len(payload)} bytes")
        return [metadata, rpc, megabytes / seconds]
    finally:
        for peer in (sender, receiver):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.disconnect(), 10)


async def run_benchmark(repeats: int, megabytes: int) -> list[tuple[str, list[float]]]:
    """(pair, [set_metadata ms, RPC ms, stream MB/s]) for each pair, the anchor first."""
    server = EmbeddedServer()
    await server.start()
    try:
        results = []
        for sender_kind in KINDS:
            for receiver_kind in KINDS:
                figures = await _measure_pair(server.url, sender_kind, receiver_kind, repeats, megabytes)
                results.append((f"{sender_kind} -> {receiver_kind}", figures))
        return results
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m kitewire.bench.data", description=__doc__)
    parser.add_argument("--repeats", type=int, default=21, help="round trips per median (default 21)")
    parser.add_argument("--megabytes", type=int, default=20, help="size of the byte stream (default 20)")
    args = parser.parse_args(argv)
    if args.repeats <= 0 or args.megabytes <= 0:
        parser.error("--repeats and --megabytes: expected positive numbers")
    results = asyncio.run(run_benchmark(args.repeats, args.megabytes))
    anchor = results[0][1]
    print(f"{'sender -> receiver':<24} {'set_metadata ms':>16} {'RPC ms':>8} {'stream MB/s':>12} {'x anchor':>22}")
    for name, (metadata, rpc, throughput) in results:
        ratios = f"{metadata / anchor[0]:.1f} / {rpc / anchor[1]:.1f} / {throughput / anchor[2]:.2f}"
        print(f"{name:<24} {metadata:>16.1f} {rpc:>8.1f} {throughput:>12.2f} {ratios:>22}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
