"""Shared helpers for the media tests: patterned frames and a lossy link."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Any, cast

import av
import numpy as np
from kitewire.media import (
    AssembledFrame,
    FrameAssembler,
    PacketHistory,
    VideoDecoder,
    VideoEncoder,
)

GRID = 4
CLOCK_RATE = 90_000


def pattern_frame(index: int, width: int, height: int) -> av.VideoFrame:
    """A yuv420p frame whose 4x4 grid of flat blocks encodes ``index``.

    Block k is bright when bit k of a per-frame code is set; the code changes
    every frame so a frame mix-up shows up as wrong block luminance.
    """
    code = (index * 2654435761) & 0xFFFF
    luma = np.empty((height, width), dtype=np.uint8)
    for row in range(GRID):
        for col in range(GRID):
            bit = (code >> (row * GRID + col)) & 1
            y0, y1 = row * height // GRID, (row + 1) * height // GRID
            x0, x1 = col * width // GRID, (col + 1) * width // GRID
            luma[y0:y1, x0:x1] = 200 if bit else 50
    # Fine noise makes frames big enough to span several packets; block means barely move.
    noise = np.random.default_rng(index).integers(-12, 13, (height, width))
    luma = (luma.astype(np.int16) + noise).astype(np.uint8)
    frame = av.VideoFrame(width, height, "yuv420p")
    chroma_w, chroma_h = (width + 1) // 2, (height + 1) // 2
    _write_plane(frame, 0, luma)
    _write_plane(frame, 1, np.full((chroma_h, chroma_w), 128, np.uint8))
    _write_plane(frame, 2, np.full((chroma_h, chroma_w), 128, np.uint8))
    return frame


def _write_plane(frame: av.VideoFrame, index: int, values: np.ndarray) -> None:
    plane = frame.planes[index]
    stride = plane.line_size
    buffer = np.frombuffer(cast(Any, plane), dtype=np.uint8).reshape(-1, stride)
    buffer[: values.shape[0], : values.shape[1]] = values


def block_means(frame: av.VideoFrame) -> np.ndarray:
    """Mean luminance of the inner part of each grid block (edges blur in coding)."""
    plane = frame.planes[0]
    luma = np.frombuffer(cast(Any, plane), dtype=np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
    means = np.empty((GRID, GRID))
    for row in range(GRID):
        for col in range(GRID):
            y0, y1 = row * frame.height // GRID, (row + 1) * frame.height // GRID
            x0, x1 = col * frame.width // GRID, (col + 1) * frame.width // GRID
            margin_y, margin_x = (y1 - y0) // 4, (x1 - x0) // 4
            means[row, col] = luma[y0 + margin_y : y1 - margin_y, x0 + margin_x : x1 - margin_x].mean()
    return means


def matches_pattern(frame: av.VideoFrame, index: int, tolerance: float = 25.0) -> bool:
    """True when ``frame`` shows the pattern of frame ``index``."""
    reference = block_means(pattern_frame(index, frame.width, frame.height))
    return bool(np.abs(block_means(frame) - reference).max() < tolerance)


@dataclass
class LinkStats:
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    retransmitted: int = 0
    keyframe_requests: int = 0
    decoded: dict[int, av.VideoFrame] = field(default_factory=dict)  # by frame index
    released: list[AssembledFrame] = field(default_factory=list)


def run_link(
    codec: str,
    width: int,
    height: int,
    frames: int,
    *,
    seed: int = 1,
    drop_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    reorder: bool = False,
    retransmit: bool = True,
    first_seq: int = 65_500,
    drop_frames: frozenset[int] = frozenset(),
    bitrate: int = 2_000_000,
    max_payload_size: int = 1200,
) -> LinkStats:
    """Encode ``frames`` patterned frames, push the RTP payloads through a
    link that drops/duplicates/reorders, answer NACKs from a PacketHistory,
    assemble and decode. Frames listed in ``drop_frames`` lose their first
    packet for good (never retransmitted)."""
    rng = random.Random(seed)
    encoder = VideoEncoder(codec, width, height, bitrate, 30.0, max_payload_size=max_payload_size)
    decoder = VideoDecoder(codec)
    assembler = FrameAssembler(codec)
    history = PacketHistory(max_packets=2048, max_age=2.0)
    stats = LinkStats()
    seq = first_seq
    now = 100.0
    index_by_timestamp: dict[int, int] = {}
    held_back: list[tuple[int, int, bool, bytes]] = []
    unrecoverable: set[int] = set()

    def deliver(packet: tuple[int, int, bool, bytes]) -> None:
        for assembled in assembler.push(*packet, now):
            stats.released.append(assembled)
            for picture in decoder.decode(assembled.data):
                stats.decoded[index_by_timestamp[assembled.timestamp]] = picture
            if decoder.needs_keyframe:
                assembler.request_keyframe()

    for index in range(frames):
        timestamp = (index * CLOCK_RATE // 30) & 0xFFFFFFFF
        index_by_timestamp[timestamp] = index
        encoded = encoder.encode(pattern_frame(index, width, height))
        packets = []
        for position, payload in enumerate(encoded):
            packet = (seq & 0xFFFF, timestamp, position == len(encoded) - 1, payload)
            # The history holds what a sender would resend: timestamp, marker and payload.
            history.add(seq & 0xFFFF, struct.pack("!IB", timestamp, position == len(encoded) - 1) + payload, now)
            packets.append(packet)
            seq += 1
        stats.sent += len(packets)
        if index in drop_frames and packets:
            unrecoverable.add(packets[0][0])
            stats.dropped += 1
            packets = packets[1:]
        arriving = held_back + packets
        held_back = []
        if reorder:
            rng.shuffle(arriving)
            # Some packets arrive only with the next frame's packets.
            while arriving and rng.random() < 0.3:
                held_back.append(arriving.pop())
        for packet in arriving:
            # A receiver cannot NACK what precedes the first packet it sees, so
            # the first frame is never dropped.
            if packet[1] != 0 and rng.random() < drop_rate:
                stats.dropped += 1
                continue
            deliver(packet)
            if rng.random() < duplicate_rate:
                stats.duplicated += 1
                deliver(packet)
        now += 1 / 30
        if retransmit:
            for _ in range(3):
                for missing in assembler.nack_list(now):
                    if missing in unrecoverable:
                        continue
                    stored = history.get(missing, now)
                    if stored is None:
                        continue
                    stats.retransmitted += 1
                    sent_timestamp, marker = struct.unpack_from("!IB", stored)
                    deliver((missing, sent_timestamp, bool(marker), stored[5:]))
                now += 0.005
        for assembled in assembler.poll(now):
            stats.released.append(assembled)
            for picture in decoder.decode(assembled.data):
                stats.decoded[index_by_timestamp[assembled.timestamp]] = picture
        if assembler.keyframe_request(now):
            stats.keyframe_requests += 1
            encoder.request_keyframe()
    # Drain the link: late packets arrive, the last gaps get NACKed.
    for packet in held_back:
        deliver(packet)
    for _ in range(3):
        now += 0.025
        for missing in assembler.nack_list(now):
            stored = history.get(missing, now)
            if stored is not None and missing not in unrecoverable:
                stats.retransmitted += 1
                sent_timestamp, marker = struct.unpack_from("!IB", stored)
                deliver((missing, sent_timestamp, bool(marker), stored[5:]))
    return stats
