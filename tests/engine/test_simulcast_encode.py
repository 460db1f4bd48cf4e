"""Simulcast layers of one frame encode at the same time on worker threads; every layer
still arrives, decodable, and a keyframe request for one layer makes a keyframe on that layer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kitewire.engine import VideoPublishPipeline
from kitewire.frames.pattern import make_pattern_frame
from kitewire.media import is_keyframe, plan_video_layers
from kitewire.transport import Codec
from kitewire.transport.rtp import build_rtp_packet, parse_rtp_header

WIDTH, HEIGHT = 1280, 720
SSRC_BY_RID = {"q": 11, "h": 12, "f": 13}


class RecordingSender:
    """A sender end that keeps every RTP packet by SSRC (what VideoPublishPipeline uses of RtpSender)."""

    def __init__(self) -> None:
        self.codecs = [Codec("video/VP8", 90000, payload_type=102)]
        self.ssrc = 10
        self.packets: dict[int, list[bytes]] = {}
        self.on_nack: Callable[[int, list[int]], object] | None = None
        self.on_keyframe_request: Callable[[int], object] | None = None
        self.on_receiver_report: object = None

    def ssrc_for_rid(self, rid: str) -> int:
        return SSRC_BY_RID[rid]

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
        return build_rtp_packet(
            payload_type=payload_type,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=self.ssrc if ssrc is None else ssrc,
            payload=payload,
            marker=marker,
        )

    def send_rtp(self, packet: bytes) -> None:
        self.packets.setdefault(parse_rtp_header(packet).ssrc, []).append(packet)

    def keyframes(self, ssrc: int) -> int:
        """Frames of ``ssrc`` whose first packet starts a VP8 keyframe."""
        count = 0
        for packet in self.packets.get(ssrc, []):
            header = parse_rtp_header(packet)
            if is_keyframe("video/VP8", packet[header.payload_offset : header.payload_end]):
                count += 1
        return count


async def _capture(publisher: VideoPublishPipeline, first: int, count: int) -> None:
    for index in range(first, first + count):
        publisher.on_frame(make_pattern_frame(index, WIDTH, HEIGHT), 1_000_000 + index * 33_333, 0)
        await asyncio.sleep(1 / 15)


async def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return condition()


async def test_every_layer_arrives_and_a_keyframe_request_reaches_its_layer() -> None:
    sender = RecordingSender()
    layers = plan_video_layers(WIDTH, HEIGHT, simulcast=True)
    assert [layer.rid for layer in layers] == ["q", "h", "f"]
    publisher = VideoPublishPipeline(sender, codec="VP8", layers=layers, simulcast=True)  # type: ignore[arg-type]
    try:
        await _capture(publisher, 0, 20)
        assert await _wait_for(lambda: publisher.frames_encoded >= 10, 30), f"{publisher.frames_encoded} encoded"
        counters = publisher.layer_counters()
        assert set(counters) == set(SSRC_BY_RID.values())
        for ssrc, layer in counters.items():
            # each layer at its own size, every encoded frame sent on each layer
            assert layer.frames_sent >= 10, f"layer {layer.rid}: {layer.frames_sent} frames"
            assert sender.keyframes(ssrc) >= 1, f"layer {layer.rid} never started with a keyframe"
        sizes = sorted((layer.width, layer.height) for layer in counters.values())
        assert sizes[-1] == (WIDTH, HEIGHT) and sizes[0][0] < sizes[1][0] < sizes[2][0]

        before = {ssrc: sender.keyframes(ssrc) for ssrc in SSRC_BY_RID.values()}
        # a subscriber of the middle layer lost its picture
        assert publisher.keyframe_requests == 0
        assert sender.on_keyframe_request is not None
        sender.on_keyframe_request(SSRC_BY_RID["h"])
        encoded_at_request = publisher.frames_encoded
        await _capture(publisher, 20, 10)
        assert await _wait_for(lambda: publisher.frames_encoded >= encoded_at_request + 3, 30)
        after = {ssrc: sender.keyframes(ssrc) for ssrc in SSRC_BY_RID.values()}
        assert after[SSRC_BY_RID["h"]] > before[SSRC_BY_RID["h"]], "the requested layer sent no keyframe"
        assert after[SSRC_BY_RID["q"]] == before[SSRC_BY_RID["q"]], "a keyframe on a layer nobody asked for"
        assert after[SSRC_BY_RID["f"]] == before[SSRC_BY_RID["f"]], "a keyframe on a layer nobody asked for"
    finally:
        await publisher.close()
