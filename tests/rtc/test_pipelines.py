"""Encode and decode pipelines joined by an in-memory RTP wire (no sockets).

The wire carries real RTP packets (built and parsed by kitewire.transport.rtp)
between a VideoPublishPipeline and a VideoReceivePipeline, and can drop packets
to exercise NACK retransmission and keyframe requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kitewire.engine import VideoPublishPipeline, VideoReceivePipeline
from kitewire.frames import VideoFrame
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.media import plan_video_layers
from kitewire.transport import Codec, RtpHeader
from kitewire.transport.rtp import (
    URI_ABS_CAPTURE_TIME,
    URI_VIDEO_ORIENTATION,
    build_rtp_packet,
    parse_rtp_header,
)

EXTENSION_IDS = {URI_ABS_CAPTURE_TIME: 5, URI_VIDEO_ORIENTATION: 6}


class Wire:
    """Sender and receiver ends of one m-line, delivering packets on the event loop."""

    def __init__(self, codec: str, drop: Callable[[int], bool] = lambda index: False) -> None:
        self.codec_list = [Codec(f"video/{codec}", 90000, payload_type=102)]
        self.drop = drop
        self.sent = 0
        self.nacked: list[int] = []
        self.keyframe_requests = 0
        self.loop = asyncio.get_running_loop()
        self.sender = _Sender(self)
        self.receiver = _Receiver(self)


class _Sender:
    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self.ssrc = 1234
        self.codecs = wire.codec_list
        self.on_nack: Callable[[int, list[int]], object] | None = None
        self.on_keyframe_request: Callable[[int], object] | None = None

    def ssrc_for_rid(self, rid: str) -> int:
        return {"q": 1, "h": 2, "f": 3}[rid]

    def build_packet(
        self,
        payload: bytes,
        *,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        marker: bool = False,
        rid: str | None = None,
        ssrc: int | None = None,
        extensions: dict[str, bytes] | None = None,
    ) -> bytes:
        by_id = {EXTENSION_IDS[uri]: value for uri, value in (extensions or {}).items() if uri in EXTENSION_IDS}
        return build_rtp_packet(
            payload_type=payload_type,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=ssrc or self.ssrc,
            payload=payload,
            marker=marker,
            extensions=by_id,
        )

    def send_rtp(self, packet: bytes) -> None:
        index = self._wire.sent
        self._wire.sent += 1
        if self._wire.drop(index):
            return
        receiver = self._wire.receiver
        self._wire.loop.call_soon(receiver.deliver, packet)


class _Receiver:
    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self.codecs = wire.codec_list
        self.header_extensions = dict(EXTENSION_IDS)
        self.on_rtp: Callable[[bytes, RtpHeader], None] | None = None

    def deliver(self, packet: bytes) -> None:
        if self.on_rtp is not None:
            self.on_rtp(packet, parse_rtp_header(packet))

    def request_keyframe(self, ssrc: int) -> None:
        self._wire.keyframe_requests += 1
        callback = self._wire.sender.on_keyframe_request
        if callback is not None:
            callback(ssrc)

    def send_nack(self, ssrc: int, sequence_numbers: list[int]) -> None:
        self._wire.nacked.extend(sequence_numbers)
        callback = self._wire.sender.on_nack
        if callback is not None:
            self._wire.loop.call_later(0.005, callback, ssrc, list(sequence_numbers))


async def run_pipelines(
    wire: Wire, codec: str, count: int, width: int = 640, height: int = 360, fps: float = 30.0
) -> list[tuple[int | None, int, int]]:
    received: list[tuple[int | None, int, int]] = []
    layers = plan_video_layers(width, height, simulcast=False)
    publisher = VideoPublishPipeline(wire.sender, codec=codec, layers=layers, simulcast=False)  # type: ignore[arg-type]
    receiver = VideoReceivePipeline(wire.receiver)  # type: ignore[arg-type]

    def on_frame(frame: VideoFrame, timestamp_us: int, rotation: int, metadata: object = None) -> None:
        received.append((read_frame_counter(frame), timestamp_us, rotation))

    receiver.on_frame = on_frame
    try:
        for index in range(count):
            publisher.on_frame(make_pattern_frame(index, width, height), 1_000_000 + index * 33_333, index % 4)
            await asyncio.sleep(1 / fps)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and (not received or received[-1][0] != count - 1):
            await asyncio.sleep(0.05)
    finally:
        await publisher.close()
        await receiver.close()
    return received


async def test_vp8_frames_arrive_in_order_with_capture_time_and_rotation() -> None:
    wire = Wire("VP8")
    received = await run_pipelines(wire, "VP8", 45)
    counters = [counter for counter, _, _ in received]
    assert len([c for c in counters if c is not None]) >= 0.9 * 45
    readable = [c for c in counters if c is not None]
    assert readable == sorted(readable)
    for counter, timestamp_us, rotation in received:
        if counter is not None:
            assert timestamp_us == 1_000_000 + counter * 33_333
            assert rotation == counter % 4


async def test_h264_frames_arrive() -> None:
    wire = Wire("H264")
    received = await run_pipelines(wire, "H264", 30)
    readable = [c for c, _, _ in received if c is not None]
    assert len(readable) >= 27
    assert readable == sorted(readable)


async def test_lost_packets_are_nacked_and_retransmitted() -> None:
    # drop every 25th packet once; retransmissions (sent again later) pass
    dropped: set[int] = set()

    def drop(index: int) -> bool:
        if index % 25 == 10 and index not in dropped:
            dropped.add(index)
            return True
        return False

    wire = Wire("VP8", drop)
    received = await run_pipelines(wire, "VP8", 60)
    readable = [c for c, _, _ in received if c is not None]
    assert dropped, "the test dropped nothing"
    assert wire.nacked, "the receiver never sent a NACK"
    assert len(readable) >= 0.9 * 60
    assert readable == sorted(readable)


async def test_frames_of_another_size_and_type_are_scaled_to_the_layer() -> None:
    import numpy as np

    wire = Wire("VP8")
    received: list[tuple[int, int]] = []
    layers = plan_video_layers(640, 360, simulcast=False)
    publisher = VideoPublishPipeline(wire.sender, codec="VP8", layers=layers, simulcast=False)  # type: ignore[arg-type]
    receiver = VideoReceivePipeline(wire.receiver)  # type: ignore[arg-type]
    receiver.on_frame = lambda frame, *_: received.append((frame.width, frame.height))
    odd = VideoFrame.from_ndarray(np.full((187, 333, 4), 200, dtype=np.uint8), 0)  # RGBA, odd size
    try:
        for index in range(10):
            publisher.on_frame(odd, index + 1, 0)
            await asyncio.sleep(1 / 30)
        deadline = time.monotonic() + 3
        while len(received) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await publisher.close()
        await receiver.close()
    assert received and set(received) == {(640, 360)}


async def test_garbage_packets_do_not_break_the_receiver() -> None:
    import random

    rng = random.Random(7)
    wire = Wire("VP8")
    receiver = VideoReceivePipeline(wire.receiver)  # type: ignore[arg-type]
    received: list[int | None] = []
    receiver.on_frame = lambda frame, *_: received.append(read_frame_counter(frame))
    try:
        for _ in range(300):
            payload = rng.randbytes(rng.randint(1, 1400))
            packet = build_rtp_packet(
                payload_type=rng.choice([102, 102, 50]),
                sequence_number=rng.randint(0, 0xFFFF),
                timestamp=rng.randint(0, 0xFFFFFFFF),
                ssrc=rng.choice([1234, 99]),
                payload=payload,
                marker=rng.random() < 0.3,
                extensions={5: rng.randbytes(rng.choice([8, 3])), 6: rng.randbytes(1)},
            )
            wire.receiver.deliver(packet)
        await asyncio.sleep(0.3)
        # a real stream afterwards still decodes
        layers = plan_video_layers(320, 180, simulcast=False)
        publisher = VideoPublishPipeline(wire.sender, codec="VP8", layers=layers, simulcast=False)  # type: ignore[arg-type]
        try:
            for index in range(30):
                publisher.on_frame(make_pattern_frame(index, 320, 180), index + 1, 0)
                await asyncio.sleep(1 / 30)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and 29 not in received:
                await asyncio.sleep(0.05)
        finally:
            await publisher.close()
    finally:
        await receiver.close()
    assert 29 in received


async def test_receiver_joining_mid_stream_gets_a_keyframe_on_request() -> None:
    # the first 60 packets (the opening keyframe and what follows) never arrive
    wire = Wire("VP8", drop=lambda index: index < 60)
    received = await run_pipelines(wire, "VP8", 45)
    readable = [c for c, _, _ in received if c is not None]
    assert wire.keyframe_requests > 0, "no PLI was sent"
    assert readable and readable[-1] == 44
    assert readable == sorted(readable)


async def test_bitrate_follows_the_publish_options() -> None:
    sizes: dict[int, int] = {}
    for bitrate in (150_000, 2_500_000):
        wire = Wire("VP8")
        layers = plan_video_layers(640, 360, simulcast=False, max_bitrate=bitrate, max_framerate=30)
        assert layers[0].max_bitrate == bitrate
        publisher = VideoPublishPipeline(wire.sender, codec="VP8", layers=layers, simulcast=False)  # type: ignore[arg-type]
        try:
            for index in range(60):
                publisher.on_frame(make_pattern_frame(index, 640, 360), index + 1, 0)
                await asyncio.sleep(1 / 30)
            await asyncio.sleep(0.2)
        finally:
            await publisher.close()
        sizes[bitrate] = publisher.bytes_sent
    assert sizes[2_500_000] > 3 * sizes[150_000], sizes
