"""A lossy, reordering link between a synthetic sender and a FrameAssembler that
checks every promise of the assembler while the stream runs across wraps.

The sender packetizes with the project's real packetizers, keeps the real
PacketHistory and answers NACKs from it; the receiver is the client's loop
(push, poll, nack_list, keyframe_request). ``run_wrap_link`` returns what
happened; the invariants that must hold at every step are asserted inside.
"""

from __future__ import annotations

import functools
import heapq
import random
import struct
from dataclasses import dataclass, field

from kitewire.media import (
    AssembledFrame,
    EncodedFrame,
    FrameAssembler,
    H264Packetizer,
    PacketHistory,
    VideoEncoder,
    Vp8Packetizer,
)
from kitewire.media.h264 import ANNEXB_START_CODE
from media_helpers import pattern_frame

FRAME_INTERVAL = 1 / 30
TICKS_PER_FRAME = 3
# Generous bound on how long the assembler may sit waiting for a keyframe
# without asking for one: loss deadline + request interval + a frame or two.
MAX_SILENT_WAIT = 0.5


@dataclass
class LinkConfig:
    codec: str
    first_seq: int
    first_timestamp: int
    timestamp_step: int
    frames: int
    loss: float = 0.0
    permanent_loss: float = 0.0  # chance per packet of a loss the sender cannot repair (not in its history)
    duplicate: float = 0.0
    reorder_jitter: float = 0.0  # seconds of extra random delay per packet
    layer_switch: float = 0.0  # chance per frame of a keyframe with a new timestamp base
    non_reference: float = 0.0  # chance per delta frame of being droppable (VP8 N bit / H264 nal_ref_idc 0)
    clean_tail: int = 25  # last frames sent without loss, reordering or switches
    seed: int = 0
    max_payload_size: int = 300
    frame_bytes: int = 1500  # frames are up to this big (about)
    packet_spacing: float = 0.0005  # seconds between a frame's packets on the wire (the pacer)
    delay_spike: float = 0.0  # chance per frame of all its packets arriving 80 ms late (overtaken by the next)
    recorded: bool = False  # real PyAV-encoded frames (a looped clip) instead of synthetic ones


@dataclass
class SentFrame:
    index: int
    timestamp: int
    first_ext: int
    last_ext: int
    data: bytes
    """What the assembler must hand out for this frame."""
    keyframe: bool
    reference: bool
    payloads: list[bytes]


@dataclass
class LinkResult:
    sent: list[SentFrame] = field(default_factory=list)
    released: list[tuple[SentFrame, AssembledFrame]] = field(default_factory=list)
    keyframe_requests: int = 0
    nacked: int = 0
    undelivered: set[int] = field(default_factory=set)
    """Extended seqs that never reached the assembler."""
    packets: int = 0


def _nonzero_bytes(rng: random.Random, size: int) -> bytes:
    # No zero bytes: an H264 NAL body must not contain a start code by accident.
    return rng.randbytes(size).replace(b"\x00", b"\x01")


class SyntheticEncoder:
    """Frames in the codec's real bitstream layout (what the assembler and the
    packetizers look at), with random bodies."""

    def __init__(self, codec: str, rng: random.Random, max_payload_size: int, frame_bytes: int) -> None:
        self.codec = codec
        self.rng = rng
        self.frame_bytes = frame_bytes
        self.vp8 = Vp8Packetizer(max_payload_size, picture_id=rng.randrange(0x8000))
        self.h264 = H264Packetizer(max_payload_size)

    def frame(self, keyframe: bool, reference: bool) -> tuple[bytes, list[bytes], bool, bool]:
        """(expected assembler output, RTP payloads, keyframe, reference)."""
        rng = self.rng
        if self.codec == "VP8":
            size = rng.randrange(20, self.frame_bytes)
            # Frame tag P bit: 0 for a key frame; a key frame carries the start code 9d 01 2a.
            tag = b"\x50\x42\x00\x9d\x01\x2a" if keyframe else b"\x31"
            bitstream = tag + _nonzero_bytes(rng, size)
            return bitstream, self.vp8.packetize(bitstream, non_reference=not reference), keyframe, reference
        nals: list[bytes] = []
        if keyframe:
            nals.append(b"\x67" + _nonzero_bytes(rng, rng.randrange(4, 20)))  # SPS
            nals.append(b"\x68" + _nonzero_bytes(rng, rng.randrange(2, 8)))  # PPS
        header = 0x65 if keyframe else (0x41 if reference else 0x01)
        for slice_index in range(rng.randrange(1, 4)):
            # first_mb_in_slice is 0 (a leading 1 bit) only in the first slice.
            first_byte = 0x80 | rng.randrange(1, 0x80) if slice_index == 0 else rng.randrange(1, 0x80)
            nals.append(bytes((header, first_byte)) + _nonzero_bytes(rng, rng.randrange(10, self.frame_bytes // 2)))
        access_unit = b"".join(ANNEXB_START_CODE + nal for nal in nals)
        return access_unit, self.h264.packetize(access_unit), keyframe, reference


class RecordedEncoder:
    """Replays a clip encoded by the project's VideoEncoder (PyAV) and packetized
    by its packetizer, in a loop. A keyframe request skips ahead to the clip's
    next keyframe, as a camera would produce one a moment later."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.clip = recorded_clip(codec)
        self.position = -1

    def frame(self, keyframe: bool, reference: bool) -> tuple[bytes, list[bytes], bool, bool]:
        self.position = (self.position + 1) % len(self.clip)
        while keyframe and not self.clip[self.position].keyframe:
            self.position = (self.position + 1) % len(self.clip)
        encoded = self.clip[self.position]
        payloads = list(encoded)
        if self.codec == "VP8":
            # Our packetizer writes a 4-byte descriptor; its N bit marks a non-reference frame.
            return b"".join(p[4:] for p in payloads), payloads, encoded.keyframe, not payloads[0][0] & 0x20
        referenced = any(_h264_slice_nal_ref_idc(p) for p in payloads)
        return annex_b_of(payloads), payloads, encoded.keyframe, referenced or encoded.keyframe


def _h264_slice_nal_ref_idc(payload: bytes) -> int:
    nal_type = payload[0] & 0x1F
    inner = payload[1] & 0x1F if nal_type == 28 else nal_type
    return payload[0] & 0x60 if 1 <= inner <= 5 else 0


@functools.cache
def recorded_clip(codec: str) -> list[EncodedFrame]:
    """60 frames of a moving pattern, a keyframe every 20, encoded once per process."""
    encoder = VideoEncoder(codec, 160, 120, 300_000, 30.0, max_payload_size=300)
    clip = []
    for index in range(60):
        encoded = encoder.encode(pattern_frame(index, 160, 120), keyframe=index % 20 == 0)
        if encoded:
            clip.append(encoded)
    encoder.close()
    assert clip[0].keyframe and sum(frame.keyframe for frame in clip) >= 3
    return clip


def annex_b_of(payloads: list[bytes]) -> bytes:
    """The Annex-B access unit carried by H264 payloads, built without the assembler."""
    out = bytearray()
    for payload in payloads:
        nal_type = payload[0] & 0x1F
        if nal_type == 28:
            if payload[1] & 0x80:
                out += ANNEXB_START_CODE + bytes(((payload[0] & 0xE0) | (payload[1] & 0x1F),))
            out += payload[2:]
        elif nal_type == 24:
            offset = 1
            while offset < len(payload):
                size = int.from_bytes(payload[offset : offset + 2], "big")
                out += ANNEXB_START_CODE + payload[offset + 2 : offset + 2 + size]
                offset += 2 + size
        else:
            out += ANNEXB_START_CODE + payload
    return bytes(out)


def run_wrap_link(config: LinkConfig) -> LinkResult:
    """Send ``config.frames`` frames through the link; assert the invariants."""
    rng = random.Random(config.seed)
    encoder: SyntheticEncoder | RecordedEncoder = (
        RecordedEncoder(config.codec)
        if config.recorded
        else SyntheticEncoder(config.codec, rng, config.max_payload_size, config.frame_bytes)
    )
    assembler = FrameAssembler(config.codec)
    history = PacketHistory(max_packets=2048, max_age=2.0)
    result = LinkResult()

    in_flight: list[tuple[float, int, int, int, bool, bytes]] = []  # (arrival, order, ext, ts, marker, payload)
    order = 0
    delivered: set[int] = set()  # extended seqs pushed into the assembler
    unrecoverable: set[int] = set()
    frame_by_last_seq: dict[int, SentFrame] = {}  # wire seq of a frame's last packet -> newest such frame
    frames_by_index: list[SentFrame] = result.sent
    released_indices: set[int] = set()
    next_ext = config.first_seq
    timestamp = config.first_timestamp
    keyframe_due = True
    last_request: float | None = None
    waiting_since: float | None = None
    now = 10.0

    def send(ext: int, ts: int, marker: bool, payload: bytes, arrival: float, lossy: bool) -> None:
        nonlocal order
        if lossy and rng.random() < config.permanent_loss:
            unrecoverable.add(ext)
            return
        if lossy and rng.random() < config.loss:
            return
        copies = 2 if lossy and rng.random() < config.duplicate else 1
        for _ in range(copies):
            jitter = rng.random() * config.reorder_jitter if lossy else 0.0
            heapq.heappush(in_flight, (arrival + jitter, order, ext, ts, marker, payload))
            order += 1

    def check_released(frames: list[AssembledFrame]) -> None:
        for assembled in frames:
            sent = frame_by_last_seq[assembled.last_seq]
            first_ext = sent.last_ext - ((assembled.last_seq - assembled.first_seq) & 0xFFFF)
            assert assembled.timestamp == sent.timestamp, "released frame carries another frame's timestamp"
            assert sent.index not in released_indices, f"frame {sent.index} released twice"
            assert not result.released or result.released[-1][0].index < sent.index, "frames out of order"
            assert all(ext in delivered for ext in range(first_ext, sent.last_ext + 1))
            if first_ext == sent.first_ext:
                assert assembled.data == sent.data, f"frame {sent.index} not byte-identical"
            else:
                # Only an H264 keyframe may start late: at its IDR slice, its parameter sets lost.
                assert config.codec == "H264" and sent.keyframe and sent.first_ext < first_ext <= sent.last_ext
                assert assembled.data == annex_b_of(sent.payloads[first_ext - sent.first_ext :])
            assert assembled.keyframe == sent.keyframe
            if not sent.keyframe:
                # Everything it predicts from, back to its keyframe, was released before.
                previous = sent.index - 1
                while previous >= 0:
                    before = frames_by_index[previous]
                    if before.reference or before.keyframe:
                        assert previous in released_indices, f"frame {sent.index} released without {previous}"
                    if before.keyframe:
                        break
                    previous -= 1
            released_indices.add(sent.index)
            result.released.append((sent, assembled))

    def deliver_until(time_limit: float) -> None:
        while in_flight and in_flight[0][0] <= time_limit:
            arrival, _, ext, ts, marker, payload = heapq.heappop(in_flight)
            delivered.add(ext)
            check_released(assembler.push(ext & 0xFFFF, ts, marker, payload, arrival))

    tail_starts = config.frames - config.clean_tail
    for tick in range(config.frames * TICKS_PER_FRAME + 30):
        frame_index, phase = divmod(tick, TICKS_PER_FRAME)
        lossy = frame_index < tail_starts
        if phase == 0 and frame_index < config.frames:
            switch = lossy and frame_index > 0 and rng.random() < config.layer_switch
            if switch:
                # A layer switch upstream: a keyframe whose timestamps continue from a new base.
                timestamp = rng.randrange(1 << 32)
            wanted_keyframe = keyframe_due or switch
            wanted_reference = wanted_keyframe or not (lossy and rng.random() < config.non_reference)
            data, payloads, keyframe, reference = encoder.frame(wanted_keyframe, wanted_reference)
            keyframe_due = False
            sent = SentFrame(
                frame_index, timestamp, next_ext, next_ext + len(payloads) - 1, data, keyframe, reference, payloads
            )
            frames_by_index.append(sent)
            frame_by_last_seq[sent.last_ext & 0xFFFF] = sent
            spike = 0.08 if lossy and rng.random() < config.delay_spike else 0.0
            for position, payload in enumerate(payloads):
                marker = position == len(payloads) - 1
                ext = next_ext + position
                history.add(ext & 0xFFFF, struct.pack("!IB", timestamp, marker) + payload, now)
                send(ext, timestamp, marker, payload, now + 0.01 + spike + position * config.packet_spacing, lossy)
            next_ext += len(payloads)
            result.packets += len(payloads)
            timestamp = (timestamp + config.timestamp_step) & 0xFFFFFFFF
        deliver_until(now)
        check_released(assembler.poll(now))

        newest_sent = next_ext - 1
        nacks = assembler.nack_list(now)
        assert len(nacks) == len(set(nacks)), f"a seq NACKed twice in one list: {nacks}"
        for wire in nacks:
            assert 0 <= wire <= 0xFFFF
            behind = (newest_sent - wire) & 0xFFFF
            ext = newest_sent - behind
            # Never a seq not sent yet, never a stale range across the wrap, never one that arrived.
            assert behind < 2048, f"NACK for {wire} is {behind} behind the newest sent {newest_sent & 0xFFFF}"
            assert ext >= config.first_seq, f"NACK for {wire}: before the stream began"
            assert ext not in delivered, f"NACK for {wire}, which arrived"
            result.nacked += 1
            stored = history.get(wire, now)
            if stored is not None and ext not in unrecoverable:
                ts, marker = struct.unpack_from("!IB", stored)
                send(ext, ts, bool(marker), stored[5:], now + 0.02, frame_index < tail_starts)

        if assembler.keyframe_request(now):
            result.keyframe_requests += 1
            last_request = now
            keyframe_due = True
        if assembler.waiting_for_keyframe:
            if waiting_since is None:
                waiting_since = now
            quiet_since = max(waiting_since, last_request or waiting_since)
            assert now - quiet_since <= MAX_SILENT_WAIT, "waiting for a keyframe without asking for one"
        else:
            waiting_since = None
        now += FRAME_INTERVAL / TICKS_PER_FRAME

    deliver_until(now + 10)
    check_released(assembler.poll(now + 10))
    result.undelivered = set(range(config.first_seq, next_ext)) - delivered
    # No stall: the clean tail ends with the last frame out and the assembler in sync.
    assert frames_by_index[-1].index in released_indices, "stalled: the last frame never came out"
    assert not assembler.waiting_for_keyframe
    assert len(assembler) == 0
    return result
