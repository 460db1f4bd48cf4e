"""Publish and receive pipelines over two real loopback PeerConnections (no server)."""

from __future__ import annotations

import asyncio
import threading
import time

from kitewire.engine import VideoPublishPipeline, VideoReceivePipeline
from kitewire.frames import VideoFrame
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.media import plan_video_layers
from kitewire.transport import PeerConnection, PeerConnectionConfig
from rtc_thread_spy import CpuWorkThreads


async def test_720p30_over_peer_connections_send_and_receive_in_one_process(cpu_work_threads: CpuWorkThreads) -> None:
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

        def on_frame(frame: VideoFrame, timestamp_us: int, rotation: int, metadata: object = None) -> None:
            received.append((read_frame_counter(frame), timestamp_us, rotation))

        receiver.on_frame = on_frame
        frames = [make_pattern_frame(index) for index in range(90)]
        start = time.monotonic()
        for index, frame in enumerate(frames):
            publisher.on_frame(frame, 5_000_000 + index, index % 4)
            await asyncio.sleep(max(0.0, start + (index + 1) / 30 - time.monotonic()))
        await asyncio.sleep(0.5)
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
    # encoding and decoding run in worker threads, never on the event loop's thread
    # (the lag this buys is measured by `kitewire bench e2e`, not asserted here)
    loop_thread = threading.get_ident()
    assert cpu_work_threads.threads_of("encode") and cpu_work_threads.threads_of("decode")
    assert loop_thread not in cpu_work_threads.threads_of("encode")
    assert loop_thread not in cpu_work_threads.threads_of("decode")
