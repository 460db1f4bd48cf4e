"""Every counter the server's forwarder keeps that wraps, run across its wrap on purpose.

RTP sequence numbers (16 bits), timestamps (32 bits), VP8 picture ids (7 or
15 bits) and TL0PICIDX (8 bits) all wrap in a stream of ordinary length: at
720p30 a video track passes 32768 sequence numbers in under two minutes.

The property tests simulate a publisher from random initial values whose
uplink loses long bursts (so a stream of a few thousand packets crosses
several wraps of every counter), reorders, loses and duplicates packets,
while the subscriber's wanted layer changes; they check the rewriter's
output packet by packet.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media.packet_history import PacketHistory
from kitewire.media.vp8_descriptor import read_vp8_descriptor
from kitewire.server.forwarder import (
    PaddingSequenceMap,
    RtpRewriter,
    UplinkGaps,
)

_H264_IDR = bytes([0x65, 0x88, 0x80])
_H264_DELTA = bytes([0x41, 0x9A])
_SEQ = 1 << 16
_TS = 1 << 32
_HALF_TS = 1 << 31


def test_a_stream_longer_than_half_the_sequence_space_keeps_forwarding() -> None:
    # Issue 8: 32768 packets after the keyframe it switched at, the rewriter
    # took every packet for one older than the switch and froze the stream.
    rw = RtpRewriter("video/H264")
    rw.target_layer = 0
    start = 1000
    previous: int | None = None
    for i in range(3 * 65536):
        payload = _H264_IDR if i == 0 else _H264_DELTA
        mapped = rw.map_packet(0, (start + i) & 0xFFFF, (i // 4) * 3000, payload, None, i / 120)
        assert mapped is not None, f"packet {i} after the keyframe was dropped"
        if previous is not None:
            assert (mapped[0] - previous) & 0xFFFF == 1, f"outgoing sequence jumped at packet {i}"
        previous = mapped[0]


def test_late_packets_from_before_the_switch_stay_dropped_after_a_long_stream() -> None:
    rw = RtpRewriter("video/H264")
    rw.target_layer = 0
    assert rw.map_packet(0, 65000, 0, _H264_IDR, None, 0.0) is not None
    for i in range(1, 50000):
        assert rw.map_packet(0, (65000 + i) & 0xFFFF, i * 3000, _H264_DELTA, None, i / 30) is not None
    rw.target_layer = 1
    assert rw.map_packet(1, 40000, 7, _H264_IDR, None, 2000.0) is not None
    # Layer 1's packets sent just before its keyframe arrive late: the receiver
    # never got the start of their frame.
    assert rw.map_packet(1, 39999, 4, _H264_DELTA, None, 2000.0) is None
    assert rw.map_packet(1, 39990, 4, _H264_DELTA, None, 2000.0) is None
    # Packets after the keyframe keep flowing, in order or late.
    assert rw.map_packet(1, 40002, 10, _H264_DELTA, None, 2000.0) is not None
    assert rw.map_packet(1, 40001, 10, _H264_DELTA, None, 2000.0) is not None


# -- the simulated publisher ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """One packet as the publisher sent it."""

    layer: int
    index: int  # unwrapped place in the layer's sequence space, lost packets counted
    frame: int  # unwrapped frame number of the layer
    keyframe_start: bool
    sequence_number: int
    timestamp: int
    picture_id: int
    tl0: int
    payload: bytes
    now: float


@dataclass(frozen=True, slots=True)
class Codec:
    mime_type: str
    picture_id_bits: int  # 0: no VP8 descriptor

    @property
    def needs_keyframe(self) -> bool:
        return not self.mime_type.startswith("audio/")


CODECS = (Codec("video/VP8", 15), Codec("video/VP8", 7), Codec("video/H264", 0), Codec("audio/opus", 0))


def _payload(codec: Codec, picture_id: int, tl0: int, keyframe: bool, start: bool) -> bytes:
    if codec.picture_id_bits:
        pid = [0x80 | (picture_id >> 8), picture_id & 0xFF] if codec.picture_id_bits == 15 else [picture_id]
        # X, S (first packet of the frame), partition 0; I and L present; then the P bit.
        return bytes([0x80 | (0x10 if start else 0), 0xC0, *pid, tl0, 0x00 if keyframe else 0x01, 0, 0])
    if codec.mime_type == "video/H264":
        nal_type = 5 if keyframe else 1
        return bytes([0x7C, (0x80 if start else 0) | nal_type, 0x9A])  # FU-A
    return bytes([0xFC, 0xFF, 0xFE])


@dataclass(frozen=True, slots=True)
class LayerStart:
    sequence_number: int
    timestamp: int
    picture_id: int
    tl0: int
    packets_per_frame: int
    keyframe_interval: int
    burst_phase: int


def _publish(
    codec: Codec, layers: list[LayerStart], frames: int, ts_step: int, burst_every: int, rng: random.Random
) -> list[Sent]:
    """Every packet the publisher sends, in send order: the layers' frames interleaved.

    Every ``burst_every`` frames a layer loses 6000-7000 frames on the uplink (all
    its counters advance, none of those packets arrives): that crosses wraps fast
    and each jump stays well within half of every counter's space.
    """
    pid_mod = 1 << (codec.picture_id_bits or 15)
    frame_of = [0] * len(layers)
    index_of = [0] * len(layers)
    sent: list[Sent] = []
    for tick in range(frames):
        for number, layer in enumerate(layers):
            if tick and tick % burst_every == layer.burst_phase % burst_every:
                lost = rng.randrange(6000, 7000)
                frame_of[number] += lost
                index_of[number] += lost * layer.packets_per_frame
            frame = frame_of[number]
            keyframe = frame == 0 or rng.randrange(layer.keyframe_interval) == 0
            pid = (layer.picture_id + frame) % pid_mod
            tl0 = (layer.tl0 + frame) & 0xFF
            ts = (layer.timestamp + frame * ts_step) % _TS
            for part in range(layer.packets_per_frame):
                index = index_of[number]
                sent.append(
                    Sent(
                        number,
                        index,
                        frame,
                        keyframe and part == 0,
                        (layer.sequence_number + index) & 0xFFFF,
                        ts,
                        pid,
                        tl0,
                        _payload(codec, pid, tl0, keyframe, part == 0),
                        tick / 30,
                    )
                )
                index_of[number] += 1
            frame_of[number] += 1
    return sent


def _network(sent: list[Sent], loss: float, reorder: float, duplicate: float, rng: random.Random) -> list[Sent]:
    """What arrives: some packets lost, some late by up to 24 places, some twice.

    24 places are fewer frames than between two of a layer's loss bursts, so no
    packet arrives after one sent half the sequence space later.
    """
    keyed: list[tuple[float, Sent]] = []
    for place, packet in enumerate(sent):
        if rng.random() < loss:
            continue
        delay = rng.uniform(0, 12) if rng.random() < reorder else 0.0
        keyed.append((place + delay, packet))
        if rng.random() < duplicate:
            keyed.append((place + delay + rng.uniform(0, 12), packet))
    keyed.sort(key=lambda item: item[0])
    return [packet for _, packet in keyed]


# -- the checker -----------------------------------------------------------------


@dataclass(slots=True)
class Segment:
    """Forwarding from one layer since the keyframe packet it started at."""

    layer: int
    start: int
    seq_offset: int
    ts_offset: int
    pid_offset: int
    tl0_offset: int
    head_index: int
    head_seq: int
    head_ts: int
    head_pid: int
    head_tl0: int


def _run_and_check(
    codec: Codec, arrivals: list[Sent], layer_count: int, switch_chance: float, rng: random.Random
) -> int:
    """Feed ``arrivals`` through a rewriter, changing the wanted layer now and then; returns the switches."""
    rw = RtpRewriter(codec.mime_type, requires_keyframe=codec.needs_keyframe)
    pid_mod = 1 << (codec.picture_id_bits or 15)
    target = rng.randrange(layer_count)
    segment: Segment | None = None
    switches = 0
    for place, packet in enumerate(arrivals):
        if place and rng.random() < switch_chance:
            target = rng.randrange(layer_count)
        rw.target_layer = target
        desc = read_vp8_descriptor(packet.payload) if codec.picture_id_bits else None
        mapped = rw.map_packet(packet.layer, packet.sequence_number, packet.timestamp, packet.payload, desc, packet.now)
        out_pid = out_tl0 = -1
        if mapped is not None and desc is not None:
            out_desc = read_vp8_descriptor(rw.picture_id_prefix(desc, packet.payload[: desc.end]))
            assert out_desc is not None and out_desc.picture_id_size == desc.picture_id_size
            out_pid = -1 if out_desc.picture_id is None else out_desc.picture_id
            out_tl0 = -1 if out_desc.tl0_pic_idx is None else out_desc.tl0_pic_idx
        where = f"arrival {place}: layer {packet.layer} index {packet.index} (segment {segment})"
        if segment is not None and packet.layer == segment.layer:
            if packet.index < segment.start:
                assert mapped is None, f"forwarded a packet from before the switch point; {where}"
                continue
            assert mapped is not None, f"dropped a packet after the switch point (a freeze); {where}"
            out_seq, out_ts, switched = mapped
            assert not switched, where
            # One fixed mapping per segment: every gap in the output is a gap in the input.
            assert out_seq == (packet.sequence_number + segment.seq_offset) & 0xFFFF, where
            assert out_ts == (packet.timestamp + segment.ts_offset) % _TS, where
            if desc is not None:
                assert out_pid == (packet.picture_id + segment.pid_offset) % (1 << codec.picture_id_bits), where
                assert out_tl0 == (packet.tl0 + segment.tl0_offset) & 0xFF, where
            if packet.index > segment.head_index:
                assert (out_seq - segment.head_seq) & 0xFFFF == packet.index - segment.head_index, where
                assert (out_ts - segment.head_ts) % _TS < _HALF_TS, f"timestamp went back; {where}"
                segment.head_index, segment.head_seq, segment.head_ts = packet.index, out_seq, out_ts
                segment.head_pid, segment.head_tl0 = out_pid, out_tl0
            continue
        if packet.layer == target and (packet.keyframe_start or not codec.needs_keyframe):
            assert mapped is not None, f"the target layer's keyframe did not switch; {where}"
            out_seq, out_ts, switched = mapped
            assert switched and rw.current_layer == packet.layer, where
            if segment is not None:
                assert out_seq == (segment.head_seq + 1) & 0xFFFF, f"sequence jumped at the switch; {where}"
                assert 0 < (out_ts - segment.head_ts) % _TS < _HALF_TS, f"timestamp not advanced; {where}"
                if desc is not None:
                    pid_step = (out_pid - segment.head_pid) % (1 << codec.picture_id_bits)
                    assert pid_step == 1, f"picture id jumped by {pid_step} at the switch; {where}"
                    assert out_tl0 == (segment.head_tl0 + 1) & 0xFF, f"TL0PICIDX jumped at the switch; {where}"
            segment = Segment(
                packet.layer,
                packet.index,
                (out_seq - packet.sequence_number) & 0xFFFF,
                (out_ts - packet.timestamp) % _TS,
                (out_pid - packet.picture_id) % pid_mod,
                (out_tl0 - packet.tl0) & 0xFF,
                packet.index,
                out_seq,
                out_ts,
                out_pid,
                out_tl0,
            )
            switches += 1
            continue
        assert mapped is None, f"forwarded a packet of a layer not switched to; {where}"
    assert rw.switches == switches
    return switches


layer_starts = st.builds(
    LayerStart,
    sequence_number=st.integers(0, _SEQ - 1),
    timestamp=st.integers(0, _TS - 1),
    picture_id=st.integers(0, (1 << 15) - 1),
    tl0=st.integers(0, 255),
    packets_per_frame=st.integers(1, 3),
    keyframe_interval=st.integers(5, 60),
    burst_phase=st.integers(0, 1000),
)


@settings(max_examples=60, deadline=None)
@given(
    codec=st.sampled_from(CODECS),
    layers=st.lists(layer_starts, min_size=1, max_size=3),
    ts_step=st.integers(1 << 17, 1 << 18),
    burst_every=st.integers(25, 50),
    loss=st.sampled_from([0.0, 0.01, 0.05]),
    reorder=st.sampled_from([0.0, 0.02, 0.1]),
    duplicate=st.sampled_from([0.0, 0.01, 0.05]),
    switch_chance=st.sampled_from([0.0, 0.005, 0.03]),
    seed=st.integers(0, (1 << 32) - 1),
)
def test_rewriter_output_across_every_wrap(
    codec: Codec,
    layers: list[LayerStart],
    ts_step: int,
    burst_every: int,
    loss: float,
    reorder: float,
    duplicate: float,
    switch_chance: float,
    seed: int,
) -> None:
    # The many per-packet choices come from a seeded generator: drawn one by one
    # they would make hypothesis's smallest example thousands of draws long.
    rng = random.Random(seed)
    if codec.picture_id_bits == 7:
        layers = [replace(layer, picture_id=layer.picture_id & 0x7F) for layer in layers]
    if not codec.needs_keyframe:
        layers = layers[:1]  # audio is one layer
    sent = _publish(codec, layers, 1200, ts_step, burst_every, rng)
    # Several wraps of every counter happened on each layer.
    last = {packet.layer: packet for packet in sent}
    for packet in last.values():
        assert packet.index >= 2 * _SEQ and packet.frame >= 2 * (1 << 15)
        assert packet.frame * ts_step >= 2 * _TS
    arrivals = _network(sent, loss, reorder, duplicate, rng)
    switches = _run_and_check(codec, arrivals, len(layers), switch_chance, rng)
    assert switches >= 1


# -- the NACK cache ----------------------------------------------------------------


def test_a_nack_just_after_the_wrap_is_answered_whatever_the_capacity() -> None:
    # A ring of 1000 slots indexed by seq % 1000 put 65000 and 0 (536 apart) in one slot.
    cache = PacketHistory(max_packets=1000, max_age=10.0)
    for seq in range(65000, 65536):
        cache.add(seq, seq.to_bytes(2, "big"), 0.0)
    cache.add(0, b"\x00\x00", 0.0)
    assert cache.get(65000, 0.1) == (65000).to_bytes(2, "big")
    assert cache.get(0, 0.1) == b"\x00\x00"
    for bad in (0, -1, 65537):
        with pytest.raises(ValueError, match="max_packets"):
            PacketHistory(max_packets=bad)


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(16, 4096),
    start=st.integers(0, _SEQ - 1),
    steps=st.lists(st.tuples(st.integers(1, 300), st.integers(0, 3)), min_size=20, max_size=200),
    seed=st.integers(0, (1 << 32) - 1),
)
def test_nack_answers_across_the_wrap(capacity: int, start: int, steps: list[tuple[int, int]], seed: int) -> None:
    """A downtrack's sends: runs of consecutive numbers, gaps (input loss), late fills;
    NACKs for recent numbers are answered with exactly that packet, old ones not at all."""
    rng = random.Random(seed)
    max_age = 0.5
    cache = PacketHistory(max_packets=capacity, max_age=max_age)
    # Lost runs long enough that the stream crosses the wrap three times.
    extra = max(0, 3 * _SEQ - sum(run for run, _ in steps)) // len(steps)
    sent_at: dict[int, float] = {}  # unwrapped number -> when
    latest: dict[int, int] = {}  # 16-bit number -> the unwrapped one sent last with it
    head = start - 1
    now = 0.0

    def send(number: int) -> None:
        cache.add(number & 0xFFFF, number.to_bytes(4, "big"), now)
        sent_at[number] = now
        latest[number & 0xFFFF] = number

    def check(asked: int) -> None:
        answer = cache.get(asked & 0xFFFF, now)
        if asked in sent_at and now - sent_at[asked] <= max_age and head - asked < capacity:
            assert answer == asked.to_bytes(4, "big"), f"unanswered NACK {asked & 0xFFFF} ({head - asked} back)"
        elif answer is not None:
            # Never another packet than the one sent last with that number, never a stale one.
            last = latest[asked & 0xFFFF]
            assert answer == last.to_bytes(4, "big") and now - sent_at[last] <= max_age

    for run, gap in steps:
        wrapped_before = head >> 16
        head += gap + extra  # numbers skipped: packets the publisher lost
        for _ in range(run):
            head += 1
            now += 0.0005
            send(head)
            if rng.random() < 0.02:  # a late packet filling an earlier hole
                late = head - rng.randrange(1, 8)
                if late not in sent_at and late >= start:
                    send(late)
        if head >> 16 != wrapped_before:  # just across the wrap: every number still held
            for asked in range(head - capacity + 1, head + 1):
                check(asked)
        for _ in range(20):
            check(head - rng.randrange(0, 2 * capacity + 8))
    assert head - start >= 3 * _SEQ - len(steps)


# -- padding removal ------------------------------------------------------------------


def test_a_late_packet_after_a_long_quiet_stretch_keeps_its_number() -> None:
    # A drop more than half the sequence space ago looked like one after the late packet.
    padding = PaddingSequenceMap()
    assert padding.map(100, False) == 100
    assert padding.map(101, True) is None
    for seq in range(102, 40102):
        assert padding.map(seq & 0xFFFF, False) == (seq - 1) & 0xFFFF
    assert padding.map(40100, False) == 40099


def test_late_packets_before_the_first_one_are_numbered() -> None:
    padding = PaddingSequenceMap()
    assert padding.map(3, False) == 3
    assert padding.map(65534, False) == 65534  # sent before 3, arrived after it


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, _SEQ - 1),
    history=st.sampled_from([4, 64, 512]),
    segments=st.lists(
        st.tuples(st.integers(0, 8000), st.integers(1, 120), st.sampled_from([0.0, 0.1, 0.6])),
        min_size=10,
        max_size=30,
    ),
    reorder=st.sampled_from([0.0, 0.05, 0.2]),
    duplicate=st.sampled_from([0.0, 0.05]),
    seed=st.integers(0, (1 << 32) - 1),
)
def test_padding_removal_across_the_wrap(
    start: int,
    history: int,
    segments: list[tuple[int, int, float]],
    reorder: float,
    duplicate: float,
    seed: int,
) -> None:
    """Each forwarded packet gets its own number minus the padding dropped before it,
    across wraps, long quiet stretches, loss, reordering and copies."""
    rng = random.Random(seed)
    # (unwrapped index, padding?) in send order; a segment starts after a run of lost numbers.
    sent: list[tuple[int, bool]] = []
    index = 0
    # Lost runs long enough to cross the wrap three times, each under half the space.
    extra = max(0, 3 * _SEQ - sum(count for _, count, _ in segments)) // len(segments)
    for lost, count, padding_share in segments:
        index += lost + extra
        for _ in range(count):
            sent.append((index, rng.random() < padding_share))
            index += 1
    # Late by up to 40 sequence numbers (however many were lost in between).
    keyed: list[tuple[float, tuple[int, bool]]] = []
    for packet in sent:
        delay = rng.uniform(0, 20) if rng.random() < reorder else 0.0
        keyed.append((packet[0] + delay, packet))
        if rng.random() < duplicate:
            keyed.append((packet[0] + delay + rng.uniform(0, 20), packet))
    keyed.sort(key=lambda item: item[0])
    padding = PaddingSequenceMap(history=history)
    dropped: set[int] = set()
    numbered: dict[int, int] = {}
    refused = 0
    for _, (at, padding_only) in keyed:
        dropped_before = padding.padding_dropped
        mapped = padding.map((start + at) & 0xFFFF, padding_only)
        if mapped is None:
            if padding.padding_dropped > dropped_before:
                assert padding_only, f"media packet {at} taken out as padding"
                dropped.add(at)
            elif at not in dropped:
                refused += 1  # late, and drops after it were forgotten
            continue
        assert at not in dropped, f"packet {at} was dropped, then a copy forwarded"
        assert numbered.setdefault(at, mapped) == mapped, f"copies of packet {at} numbered differently"
    ordered_drops = sorted(dropped)
    for at, mapped in numbered.items():
        drops_before = bisect.bisect_left(ordered_drops, at)
        assert mapped == (start + at - drops_before) & 0xFFFF, f"packet {at} misnumbered"
    if len(dropped) < history:
        assert refused == 0, "a packet was refused though every drop was remembered"
    if reorder == 0.0 and duplicate == 0.0:
        assert len(numbered) + len(dropped) == len(sent)
    assert index >= 3 * _SEQ - len(segments)


# -- NACKs to the publisher ----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, _SEQ - 1),
    runs=st.lists(st.tuples(st.integers(1, 200), st.sampled_from([0, 1, 3, 64, 65, 200, 20_000])), max_size=60),
    loss=st.sampled_from([0.0, 0.02, 0.1]),
    reorder=st.sampled_from([0.0, 0.05, 0.2]),
    duplicate=st.sampled_from([0.0, 0.05]),
    seed=st.integers(0, (1 << 32) - 1),
)
def test_uplink_nacks_across_the_wrap(
    start: int, runs: list[tuple[int, int]], loss: float, reorder: float, duplicate: float, seed: int
) -> None:
    """Exactly the numbers skipped by a short jump past the newest packet are NACKed,
    once, however many wraps the stream crossed; wraps alone cause none."""
    rng = random.Random(seed)
    sent: list[int] = []  # unwrapped
    index = 0
    for count, lost in runs:
        index += lost
        sent.extend(range(index, index + count))
        index += count
    # Crossing the wrap several times however short the draw.
    sent.extend(range(index + 20_000, index + 20_100))
    sent.extend(range(index + 40_000, index + 40_100))
    sent.extend(range(index + 60_000, index + 60_100))
    sent.extend(range(index + 80_000, index + 80_100))
    keyed: list[tuple[float, int]] = []
    for number in sent:
        if rng.random() < loss:
            continue
        delay = rng.uniform(0, 20) if rng.random() < reorder else 0.0
        keyed.append((number + delay, number))
        if rng.random() < duplicate:
            keyed.append((number + delay + rng.uniform(0, 20), number))
    keyed.sort(key=lambda item: item[0])
    gaps = UplinkGaps(max_gap=64)
    newest: int | None = None
    nacked: list[int] = []
    for _, number in keyed:
        got = gaps.missing((start + number) & 0xFFFF)
        expected: tuple[int, ...] = ()
        if newest is None or number > newest:
            if newest is not None and 2 <= number - newest <= 65:
                expected = tuple((start + n) & 0xFFFF for n in range(newest + 1, number))
            newest = number
        assert got == expected, f"packet {number} after {newest}"
        nacked.extend(got)
    if loss == 0.0 and reorder == 0.0 and all(lost == 0 or lost > 64 for _, lost in runs):
        assert not nacked, "NACKs with nothing missing"


def test_a_restarted_numbering_is_followed() -> None:
    gaps = UplinkGaps(max_gap=64)
    for seq in range(65000, 65536):
        assert gaps.missing(seq) == ()
    assert gaps.missing(5000) == ()  # a long jump: not loss worth asking for
    # The numbering restarts 25536 back: its losses are asked for again.
    assert gaps.missing(45000) == ()
    assert gaps.missing(45001) == ()
    assert gaps.missing(45004) == (45002, 45003)
    assert gaps.missing(44990) == ()  # late, not a restart
    assert gaps.missing(45005) == ()
    with pytest.raises(ValueError, match="max_gap"):
        UplinkGaps(max_gap=0)


# -- the timestamp advance at a switch -------------------------------------------------


def test_a_switch_after_hours_of_silence_still_moves_time_forward() -> None:
    # The advance is the wall time since the last frame, in clock ticks: after
    # 6.6 hours at 90 kHz that is over half the 32-bit space, i.e. backwards.
    for hours in (1, 7, 13, 100):
        rw = RtpRewriter("video/H264")
        rw.target_layer = 0
        first = rw.map_packet(0, 10, 1234, _H264_IDR, None, 0.0)
        assert first is not None
        rw.target_layer = 1
        switched = rw.map_packet(1, 500, 99, _H264_IDR, None, hours * 3600.0)
        assert switched is not None and switched[2]
        assert 0 < (switched[1] - first[1]) % _TS < _HALF_TS, f"timestamp went back after {hours} h"
