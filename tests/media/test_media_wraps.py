"""Counters that wrap, on the client's media path: FrameAssembler across 16-bit
sequence and 32-bit timestamp wraps, PacketHistory across the sequence wrap,
VP8 PictureID / TL0PICIDX across their 7/15/8-bit wraps."""

from __future__ import annotations

import random
from collections import deque

from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from kitewire.media import FrameAssembler, PacketHistory, VideoEncoder, Vp8Packetizer, parse_vp8_descriptor
from media_helpers import pattern_frame
from wrap_link import LinkConfig, run_wrap_link

CODECS = st.sampled_from(["VP8", "H264"])


def _config(
    draw: st.DrawFn, codec: str, frames: int, packets_before_wrap: int, timestamp_steps_before_wrap: int
) -> LinkConfig:
    # Random start, placed so the stream crosses the 16-bit seq wrap and the
    # 32-bit timestamp wrap while it runs.
    step = draw(st.one_of(st.just(3000), st.integers(1, (1 << 31) - 1)))
    before_wrap = draw(st.integers(1, packets_before_wrap))
    timestamp_before_wrap = draw(st.integers(0, timestamp_steps_before_wrap)) * step
    return LinkConfig(
        codec=codec,
        first_seq=(0x10000 - before_wrap) & 0xFFFF,
        first_timestamp=((1 << 32) - timestamp_before_wrap) & 0xFFFFFFFF,
        timestamp_step=step,
        frames=frames,
        loss=draw(st.sampled_from([0.0, 0.02, 0.08])),
        permanent_loss=draw(st.sampled_from([0.0, 0.0, 0.003])),
        duplicate=draw(st.sampled_from([0.0, 0.05])),
        reorder_jitter=draw(st.sampled_from([0.0, 0.004, 0.02])),
        layer_switch=draw(st.sampled_from([0.0, 0.03])),
        non_reference=draw(st.sampled_from([0.0, 0.2])),
        seed=draw(st.integers(0, 2**32)),
        # Big frames span several frame intervals on the wire, so frames interleave.
        frame_bytes=draw(st.sampled_from([1500, 15_000])),
        packet_spacing=draw(st.sampled_from([0.0005, 0.002])),
        delay_spike=draw(st.sampled_from([0.0, 0.03])),
    )


@st.composite
def link_configs(draw: st.DrawFn) -> LinkConfig:
    return _config(draw, draw(CODECS), frames=180, packets_before_wrap=400, timestamp_steps_before_wrap=60)


@settings(max_examples=40, deadline=None)
@given(link_configs())
def test_assembler_across_seq_and_timestamp_wraps_with_loss_reordering_and_switches(config: LinkConfig) -> None:
    result = run_wrap_link(config)
    assert result.sent[0].first_ext <= 0xFFFF < result.sent[-1].last_ext, "the stream did not cross the seq wrap"
    lossless = config.loss == 0.0 and config.permanent_loss == 0.0
    # The receiver cannot know of a loss before the first packet it sees (and an
    # H264 keyframe may start at its IDR slice without it).
    unnoticeable = {config.first_seq}
    if result.undelivered - unnoticeable and config.layer_switch == 0.0 and config.non_reference == 0.0:
        # A reference frame that cannot be completed: only a keyframe helps.
        assert result.keyframe_requests > 0
    if lossless:
        # Reordering may still be NACKed (checked in the link: only seqs not arrived yet).
        assert not result.undelivered
    if lossless and config.layer_switch == 0.0:
        # Nothing lost and no keyframe to jump to: every frame, once, in order.
        assert [sent.index for sent, _ in result.released] == list(range(config.frames))
        assert result.keyframe_requests == 0


@settings(max_examples=20, deadline=None)
@given(link_configs())
def test_assembler_across_wraps_with_pyav_encoded_frames(config: LinkConfig) -> None:
    # The same link with real VP8/H264 bitstreams from the project's VideoEncoder.
    config.recorded = True
    result = run_wrap_link(config)
    assert result.sent[0].first_ext <= 0xFFFF < result.sent[-1].last_ext, "the stream did not cross the seq wrap"
    if config.loss == 0.0 and config.permanent_loss == 0.0 and config.layer_switch == 0.0:
        # The clip's own keyframes may overtake reordered frames; everything else comes out.
        skipped = config.frames - len(result.released)
        assert skipped == 0 or config.reorder_jitter or config.delay_spike


@st.composite
def long_configs(draw: st.DrawFn) -> LinkConfig:
    config = _config(draw, draw(CODECS), frames=3400, packets_before_wrap=1500, timestamp_steps_before_wrap=3400)
    # About 20 packets per frame, so a few thousand frames cross the seq wrap twice.
    config.max_payload_size = 100
    config.frame_bytes = 4000
    return config


# Shrinking a stream of ~150k packets would take minutes; a failure is reported as found.
@settings(max_examples=2, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(long_configs())
def test_assembler_over_several_seq_wraps(config: LinkConfig) -> None:
    result = run_wrap_link(config)
    wraps = (result.sent[-1].last_ext >> 16) - (result.sent[0].first_ext >> 16)
    assert wraps >= 2, f"only {wraps} seq wraps"
    assert len(result.released) > config.frames // 2


@settings(max_examples=50, deadline=None)
@given(first_seq=st.integers(0, 0xFFFF), gap=st.integers(1, 300), timestamp=st.integers(0, 0xFFFFFFFF))
def test_nack_list_names_exactly_the_gap_across_the_wrap(first_seq: int, gap: int, timestamp: int) -> None:
    packetizer = Vp8Packetizer(100, picture_id=0)
    assembler = FrameAssembler("VP8", max_packets=1024)
    seq = first_seq
    key = packetizer.packetize(b"\x50\x42\x00\x9d\x01\x2a" + bytes(150))
    for position, payload in enumerate(key):
        assembler.push(seq & 0xFFFF, timestamp, position == len(key) - 1, payload, 0.0)
        seq += 1
    # A burst of `gap` packets is lost; the next one arrives.
    missing = [(seq + offset) & 0xFFFF for offset in range(gap)]
    seq += gap
    delta = packetizer.packetize(b"\x31" + bytes(40))
    assembler.push(seq & 0xFFFF, (timestamp + 3000) & 0xFFFFFFFF, True, delta[0], 0.01)
    nacked = assembler.nack_list(0.01)
    # Only the newest 256 of a longer gap are worth asking for.
    assert nacked == missing[-256:]
    for wire in nacked:
        assembler.push(wire, (timestamp + 1500) & 0xFFFFFFFF, False, b"\x80\x80\x00\x00" + bytes(10), 0.02)
    assert assembler.nack_list(1.0) == []


@settings(max_examples=100, deadline=None)
@given(first_id=st.integers(0, 0x7FFF), frames=st.integers(1, 300))
def test_vp8_packetizer_picture_id_wraps_at_15_bits(first_id: int, frames: int) -> None:
    packetizer = Vp8Packetizer(60, picture_id=first_id)
    for index in range(frames):
        expected = (first_id + index) & 0x7FFF
        for payload in packetizer.packetize(bytes(range(1, 150))):
            descriptor = parse_vp8_descriptor(payload)
            assert descriptor.picture_id == expected and descriptor.picture_id_15bit
    assert packetizer.picture_id == (first_id + frames) & 0x7FFF


@settings(max_examples=200, deadline=None)
@given(picture_id=st.integers(0, 0x7FFF), tl0=st.integers(0, 0xFF), tid=st.integers(0, 3), short=st.booleans())
def test_vp8_descriptor_picture_id_and_tl0picidx_round_the_wrap(
    picture_id: int, tl0: int, tid: int, short: bool
) -> None:
    # X, I, L, T set; a 7-bit or 15-bit PictureID written as the wire shows it.
    pid = bytes((picture_id & 0x7F,)) if short else bytes((0x80 | picture_id >> 8, picture_id & 0xFF))
    payload = bytes((0x90, 0xE0)) + pid + bytes((tl0, tid << 6 | 0x20)) + b"\x31rest"
    descriptor = parse_vp8_descriptor(payload)
    assert descriptor.picture_id == (picture_id & 0x7F if short else picture_id)
    assert descriptor.picture_id_15bit is not short
    assert descriptor.tl0_pic_idx == tl0 and descriptor.tid == tid and descriptor.layer_sync
    assert payload[descriptor.header_size :] == b"\x31rest"


@settings(max_examples=30, deadline=None)
@given(first_seq=st.integers(0, 0xFFFF), timestamp=st.integers(0, 0xFFFFFFFF), copies=st.integers(32, 200))
def test_late_originals_of_a_retransmitted_burst_are_not_a_sender_restart(
    first_seq: int, timestamp: int, copies: int
) -> None:
    # A delay spike: a big frame is NACKed, its retransmissions complete it, then
    # the delayed originals trail in. They are late copies, not a new sequence.
    packetizer = Vp8Packetizer(100, picture_id=0)
    assembler = FrameAssembler("VP8")
    seq = first_seq
    released = []
    frames = [b"\x50\x42\x00\x9d\x01\x2a" + bytes(range(1, 200)), b"\x31" + bytes(range(1, 250)) * (copies // 2)]
    sent = []
    for index, bitstream in enumerate(frames):
        payloads = packetizer.packetize(bitstream)
        for position, payload in enumerate(payloads):
            packet = (seq & 0xFFFF, (timestamp + 3000 * index) & 0xFFFFFFFF, position == len(payloads) - 1, payload)
            released += assembler.push(*packet, 0.01 * index)
            sent.append(packet)
            seq += 1
    assert [frame.data for frame in released] == frames
    for packet in sent[-copies:]:
        assert assembler.push(*packet, 0.1) == []
    follow_up = packetizer.packetize(b"\x31next")
    (frame,) = assembler.push(seq & 0xFFFF, (timestamp + 6000) & 0xFFFFFFFF, True, follow_up[0], 0.11)
    assert frame.data == b"\x31next" and frame.first_seq == seq & 0xFFFF
    assert assembler.nack_list(0.11) == [] and not assembler.waiting_for_keyframe


@settings(max_examples=12, deadline=None)
@given(
    first_seq=st.integers(0, 0xFFFF),
    max_packets=st.sampled_from([1, 16, 512, 0x8000]),
    max_age=st.sampled_from([0.05, 1.0]),
    seed=st.integers(0, 2**32),
)
def test_packet_history_across_several_seq_wraps(first_seq: int, max_packets: int, max_age: float, seed: int) -> None:
    rng = random.Random(seed)
    history = PacketHistory(max_packets=max_packets, max_age=max_age)
    sent: deque[tuple[int, float, bytes]] = deque()  # (extended seq, sent at, packet), newest last
    now = 1000.0
    for ext in range(first_seq, first_seq + 3 * 0x10000 + rng.randrange(0x10000), 7):
        # Sending skips numbers (another stream, padding) so three wraps take few adds.
        packet = ext.to_bytes(4, "big")
        history.add(ext & 0xFFFF, packet, now)
        sent.append((ext, now, packet))
        if len(sent) > max_packets:
            sent.popleft()
        now += rng.choice((0.0001, 0.001, 0.01))
        if rng.random() < 0.01:
            # A NACK for recent numbers (held or not), some from the previous cycle.
            asked = [(ext - rng.randrange(0, 2 * max_packets * 7 + 20)) & 0xFFFF for _ in range(8)]
            held = {e & 0xFFFF: (t, p) for e, t, p in sent if now - t <= max_age}
            expected = [(seq, held[seq][1]) for seq in asked if seq in held]
            assert history.get_many(asked, now) == expected
            for seq in asked:
                assert history.get(seq, now) == (held[seq][1] if seq in held else None)
            assert len(history) <= max_packets


def test_packet_history_answers_a_nack_that_straddles_the_wrap() -> None:
    history = PacketHistory(max_packets=64, max_age=1.0)
    for offset in range(40):
        seq = (65_520 + offset) & 0xFFFF
        history.add(seq, bytes((offset,)), 5.0 + offset * 0.001)
    lost = [65_534, 65_535, 0, 1, 19]
    assert history.get_many(lost, 5.05) == [
        (65_534, b"\x0e"),
        (65_535, b"\x0f"),
        (0, b"\x10"),
        (1, b"\x11"),
        (19, b"#"),
    ]
    assert history.get(24, 5.05) is None  # not sent in this cycle yet
    assert history.get_many(lost, 6.05) == []  # all older than max_age


def test_publisher_encoder_picture_ids_cross_the_15_bit_wrap() -> None:
    # The publisher sends what VideoEncoder packetizes: one PictureID per frame, wrapping 0x7FFF -> 0.
    encoder = VideoEncoder("VP8", 160, 120, 300_000, 30.0, max_payload_size=300)
    packetizer = encoder.packetizer
    assert isinstance(packetizer, Vp8Packetizer)
    packetizer.picture_id = 0x7FFD
    seen = []
    for index in range(5):
        encoded = encoder.encode(pattern_frame(index, 160, 120))
        ids = {parse_vp8_descriptor(payload).picture_id for payload in encoded}
        assert len(ids) == 1
        seen.append(ids.pop())
    encoder.close()
    assert seen == [0x7FFD, 0x7FFE, 0x7FFF, 0, 1]


def test_frame_between_a_late_first_keyframe_and_what_overtook_it_is_awaited() -> None:
    # The stream's first frames are overtaken at start-up (and across the wrap): the
    # frame between the late keyframe and the packets that came first is missing, not lost.
    packetizer = Vp8Packetizer(100, picture_id=0)
    key = packetizer.packetize(b"\x50\x42\x00\x9d\x01\x2a" + bytes(range(1, 250)))
    first, second = packetizer.packetize(b"\x31one"), packetizer.packetize(b"\x31two" + bytes(range(1, 150)))
    seq = 0x10000 - len(key) + 1  # the keyframe ends just after the wrap
    packets = []
    for index, payloads in enumerate((key, first, second)):
        for position, payload in enumerate(payloads):
            packets.append((seq & 0xFFFF, 7000 + 3000 * index, position == len(payloads) - 1, payload))
            seq += 1
    assembler = FrameAssembler("VP8")
    key_packets, first_packets, second_packets = packets[: len(key)], packets[len(key) : len(key) + 1], packets[-2:]
    released = [f for p in second_packets + key_packets for f in assembler.push(*p, 0.0)]
    assert [f.timestamp for f in released] == [7000]
    assert assembler.nack_list(0.0) == [first_packets[0][0]]
    assert not assembler.keyframe_request(0.05)
    released = assembler.push(*first_packets[0], 0.05)
    assert [f.data for f in released] == [b"\x31one", b"\x31two" + bytes(range(1, 150))]
