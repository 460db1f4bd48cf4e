"""Publish and receive pipelines over two real loopback PeerConnections (no server)."""

from __future__ import annotations

import asyncio
import time

from kitewire.demo import make_pattern_frame, read_frame_counter
from kitewire.engine import VideoPublishPipeline, VideoReceivePipeline
from kitewire.frames import VideoFrame
from kitewire.media import plan_video_layers
from kitewire.transport import PeerConnection, PeerConnectionConfig


def windowed_p99_ms(lags_ms: list[float], windows: int = 3) -> list[float]:
    """p99 of each of ``windows`` consecutive slices of the lag samples.

    The machine may be shared with other processes; judging the median window
    keeps one burst of outside load from deciding the result.
    """
    size = max(1, len(lags_ms) // windows)
    result = []
    for start in range(0, size * windows, size):
        window = sorted(lags_ms[start : start + size])
        result.append(window[max(0, int(len(window) * 0.99) - 1)])
    return sorted(result)

async def measure_loop_lag(stop: asyncio.Event, lags_ms: list[float], period: float = 0.005) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(period)
        lags_ms.append((loop.time() - start - period) * 1000)


async def test_720p30_over_peer_connections_send_and_receive_in_one_process() -> None:
    sender_pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    receiver_pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    publisher: VideoPublishPipeline | None = None
    receiver: VideoReceivePipeline | None = None
    received: list[tuple[int | None, int, int]] = []
    try:
        transceiver = sender_pc.add_transceiver("video", "sendonly", stream_id="stream", track_id="track")
        await receiver_pc.set_remote_description(await sender_pc.create_offer(), "offer")
        await sender_pc.set_remote_description(await receiver_pc.create_answer(), "answer")
        await asyncio.gather(sender_pc.wait_connected(10), receiver_pc.wait_connected(10))
        layers = plan_video_layers(1280, 720, simulcast=False)
        publisher = VideoPublishPipeline(transceiver.sender, codec="VP8", layers=layers, simulcast=False)
        await publisher.warm_up()  # as the engine does while negotiating
        receiver = VideoReceivePipeline(receiver_pc.transceivers[0].receiver)

        def on_frame(frame: VideoFrame, timestamp_us: int, rotation: int) -> None:
            received.append((read_frame_counter(frame), timestamp_us, rotation))

        receiver.on_frame = on_frame
        frames = [make_pattern_frame(index) for index in range(90)]
        stop = asyncio.Event()
        lags_ms: list[float] = []
        lag_task = asyncio.get_running_loop().create_task(measure_loop_lag(stop, lags_ms))
        start = time.monotonic()
        for index, frame in enumerate(frames):
            publisher.on_frame(frame, 5_000_000 + index, index % 4)
            await asyncio.sleep(max(0.0, start + (index + 1) / 30 - time.monotonic()))
        await asyncio.sleep(0.5)
        stop.set()
        await lag_task
    finally:
        if publisher is not None:
            await publisher.close()
        if receiver is not None:
            await receiver.close()
        await sender_pc.close()
        await receiver_pc.close()
    readable = [counter for counter, _, _ in received if counter is not None]
    assert len(readable) >= 81, f"only {len(readable)} of 90 frames decoded"
    assert readable == sorted(readable)
    for counter, timestamp_us, rotation in received:
        if counter is not None:
            assert timestamp_us == 5_000_000 + counter
            assert rotation == counter % 4
    # encoding and decoding 720p30 in one process: a looser bound than the 10 ms the
    # receive-only test holds (test_room_e2e), still far below a frame interval
    p99s = windowed_p99_ms(lags_ms)
    assert p99s[1] < 20.0, f"event-loop lag p99 per window {p99s} ms"
