"""FrameAssembler: ordering, duplicates, wrap-around, NACK, keyframe requests, bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media import FrameAssembler, H264Packetizer, Vp8Packetizer

Packet = tuple[int, int, bool, bytes]


def vp8_bitstream(index: int, keyframe: bool, size: int = 250) -> bytes:
    body = bytes([index & 0xFF]) * size
    if keyframe:
        return b"\x50\x42\x00\x9d\x01\x2a\x80\x02\xe0\x01" + body
    return b"\x31\x05\x00" + body


def annex_b(*nals: bytes) -> bytes:
    """An H.264 access unit: each NAL unit after a four-byte start code."""
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


class Vp8Sender:
    """Makes RTP packet fields for synthetic VP8 frames (several packets each)."""

    def __init__(self, first_seq: int = 0, max_payload_size: int = 100) -> None:
        self.seq = first_seq
        self.timestamp = 1000
        self.packetizer = Vp8Packetizer(max_payload_size, picture_id=0)
        self.bitstreams: dict[int, bytes] = {}

    def frame(self, index: int, keyframe: bool = False) -> list[Packet]:
        bitstream = vp8_bitstream(index, keyframe)
        payloads = self.packetizer.packetize(bitstream)
        self.timestamp = (self.timestamp + 3000) & 0xFFFFFFFF
        self.bitstreams[self.timestamp] = bitstream
        packets = []
        for position, payload in enumerate(payloads):
            packets.append((self.seq & 0xFFFF, self.timestamp, position == len(payloads) - 1, payload))
            self.seq += 1
        return packets


def push_all(assembler: FrameAssembler, packets: list[Packet], now: float) -> list[int]:
    """Push packets and return the timestamps of released frames."""
    released = []
    for packet in packets:
        released += [frame.timestamp for frame in assembler.push(*packet, now)]
    return released


def test_in_order_frames_are_released_immediately_with_their_bitstream() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8")
    key = sender.frame(0, keyframe=True)
    assert len(key) > 2
    for packet in key[:-1]:
        assert assembler.push(*packet, 0.0) == []
    (frame,) = assembler.push(*key[-1], 0.0)
    assert frame.keyframe and frame.data == sender.bitstreams[frame.timestamp]
    assert (frame.first_seq, frame.last_seq) == (key[0][0], key[-1][0])
    delta = sender.frame(1)
    released = push_all(assembler, delta, 0.01)
    assert released == [delta[0][1]]
    assert len(assembler) == 0
    assert not assembler.waiting_for_keyframe


def test_reordering_duplicates_and_wraparound() -> None:
    rng = random.Random(5)
    sender = Vp8Sender(first_seq=65_520)
    assembler = FrameAssembler("VP8")
    frames = [sender.frame(0, keyframe=True)] + [sender.frame(i) for i in range(1, 30)]
    released: list[int] = []
    for index in range(0, 30, 3):
        batch = [packet for frame in frames[index : index + 3] for packet in frame]
        batch += rng.sample(batch, 4)  # duplicates
        rng.shuffle(batch)
        released += push_all(assembler, batch, index / 30)
    expected = [frame[0][1] for frame in frames]
    assert released == expected  # decode order, each exactly once, across the wrap
    assert assembler.packets_duplicate >= 1
    assert assembler.nack_list(10.0) == []
    assert not assembler.keyframe_request(10.0)


def test_gap_is_nacked_with_bounded_spaced_retries_and_recovered() -> None:
    sender = Vp8Sender(first_seq=65_534)
    assembler = FrameAssembler("VP8", nack_interval=0.02, max_nack_retries=3, loss_deadline=0.5)
    push_all(assembler, sender.frame(0, keyframe=True), 0.0)
    frame1, frame2 = sender.frame(1), sender.frame(2)
    lost = frame1[1]
    assert push_all(assembler, [p for p in frame1 if p != lost] + frame2, 0.010) == []
    assert assembler.nack_list(0.010) == [lost[0]]
    assert assembler.nack_list(0.015) == []  # spacing
    assert assembler.nack_list(0.031) == [lost[0]]
    assert assembler.nack_list(0.052) == [lost[0]]
    assert assembler.nack_list(0.080) == []  # retries used up
    assert not assembler.keyframe_request(0.080)
    released = push_all(assembler, [lost], 0.1)  # the retransmission
    assert released == [frame1[0][1], frame2[0][1]]
    assert assembler.nack_list(0.2) == []


def test_unrecoverable_loss_requests_keyframe_and_withholds_delta_frames() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8", loss_deadline=0.1, keyframe_request_interval=0.25)
    push_all(assembler, sender.frame(0, keyframe=True), 0.0)
    frame1 = sender.frame(1)
    push_all(assembler, frame1[1:], 0.01)  # first packet of frame 1 never arrives
    frame2 = sender.frame(2)
    assert push_all(assembler, frame2, 0.02) == []
    assert assembler.poll(0.05) == []
    assert not assembler.keyframe_request(0.05)
    assert assembler.poll(0.2) == []  # gave up: frame 1 lost, frame 2 depends on it
    assert assembler.waiting_for_keyframe
    assert assembler.keyframe_request(0.2)
    assert not assembler.keyframe_request(0.3)  # rate limited
    assert push_all(assembler, sender.frame(3), 0.3) == []  # still a delta frame
    assert assembler.keyframe_request(0.46)
    key = sender.frame(4, keyframe=True)
    assert push_all(assembler, key, 0.5) == [key[0][1]]
    assert not assembler.waiting_for_keyframe
    assert not assembler.keyframe_request(1.0)
    assert assembler.frames_dropped >= 2
    frame5 = sender.frame(5)
    assert push_all(assembler, frame5, 0.53) == [frame5[0][1]]


def test_complete_keyframe_ahead_of_a_gap_is_released_without_waiting() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8", loss_deadline=10.0)
    push_all(assembler, sender.frame(0, keyframe=True), 0.0)
    frame1 = sender.frame(1)
    key = sender.frame(2, keyframe=True)
    push_all(assembler, frame1[:-1], 0.01)
    # Frame 1 is incomplete, but the keyframe after it makes it irrelevant.
    assert push_all(assembler, key, 0.02) == [key[0][1]]
    late = push_all(assembler, [frame1[-1]], 0.03)
    assert late == [] and assembler.packets_late == 1


def test_start_mid_stream_waits_for_keyframe_and_asks_after_the_deadline() -> None:
    sender = Vp8Sender()
    sender.frame(0, keyframe=True)  # never received
    assembler = FrameAssembler("VP8", loss_deadline=0.1)
    assert push_all(assembler, sender.frame(1), 0.0) == []
    assert assembler.waiting_for_keyframe
    assert not assembler.keyframe_request(0.05)
    assert assembler.keyframe_request(0.11)
    key = sender.frame(2, keyframe=True)
    assert push_all(assembler, key, 0.2) == [key[0][1]]


def test_first_frame_reordered_at_start_is_still_assembled() -> None:
    sender = Vp8Sender()
    key = sender.frame(0, keyframe=True)
    assembler = FrameAssembler("VP8")
    assert push_all(assembler, list(reversed(key)), 0.0) == [key[0][1]]


def test_decoder_trouble_makes_it_wait_for_a_keyframe() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8")
    push_all(assembler, sender.frame(0, keyframe=True), 0.0)
    assembler.request_keyframe()
    assert assembler.keyframe_request(0.01)
    assert push_all(assembler, sender.frame(1), 0.02) == []
    key = sender.frame(2, keyframe=True)
    assert push_all(assembler, key, 0.03) == [key[0][1]]


def test_memory_is_bounded_while_waiting() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8", max_packets=64)
    for index in range(1, 200):
        push_all(assembler, sender.frame(index), index / 30)
        assert len(assembler) <= 64
    assert assembler.waiting_for_keyframe


def test_memory_is_bounded_when_packets_go_missing_for_good() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8", max_packets=64, loss_deadline=100.0)
    push_all(assembler, sender.frame(0, keyframe=True), 0.0)
    for index in range(1, 200):
        packets = sender.frame(index)
        push_all(assembler, packets[1:] if index == 5 else packets, index / 30)
        assert len(assembler) <= 64
    assert assembler.waiting_for_keyframe
    key = sender.frame(200, keyframe=True)
    assert push_all(assembler, key, 8.0) == [key[0][1]]


def test_large_gap_gives_up_at_once() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8", loss_deadline=100.0)
    push_all(assembler, sender.frame(0, keyframe=True), 0.0)
    sender.seq += 5000  # a long outage
    assert push_all(assembler, sender.frame(1), 0.1) == []
    assert len(assembler.nack_list(0.1)) <= 256
    assert assembler.waiting_for_keyframe
    key = sender.frame(2, keyframe=True)
    assert push_all(assembler, key, 0.2) == [key[0][1]]


def test_h264_frames_end_at_marker_and_keyframes_start_at_stap_a() -> None:
    packetizer = H264Packetizer(200)
    sps, pps = b"\x67\x42\xe0\x1f\x11", b"\x68\xce\x3c\x80"
    idr = b"\x65\x88" + b"\x11" * 900
    delta = b"\x41\x9a" + b"\x22" * 500
    assembler = FrameAssembler("H264")
    seq, released = 65_000, []
    for index, nals in enumerate([(sps, pps, idr), (delta,), (delta,)]):
        payloads = packetizer.packetize(annex_b(*nals))
        packets = [(seq + i, index * 3000, i == len(payloads) - 1, p) for i, p in enumerate(payloads)]
        seq += len(payloads)
        random.Random(index).shuffle(packets)
        for packet in packets:
            released += assembler.push(*packet, index / 30)
    assert [frame.timestamp for frame in released] == [0, 3000, 6000]
    assert [frame.keyframe for frame in released] == [True, False, False]
    assert released[0].data == annex_b(sps, pps, idr)


def test_missing_marker_is_inferred_from_the_timestamp_change() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8")
    key = [(s, t, False, p) for s, t, _, p in sender.frame(0, keyframe=True)]
    delta = sender.frame(1)
    assert push_all(assembler, key, 0.0) == []
    assert push_all(assembler, delta, 0.01) == [key[0][1], delta[0][1]]


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="codec"):
        FrameAssembler("MPEG2")
    with pytest.raises(ValueError, match="loss_deadline"):
        FrameAssembler("VP8", loss_deadline=-1)
    with pytest.raises(ValueError, match="max_packets"):
        FrameAssembler("VP8", max_packets=1)
    assembler = FrameAssembler("VP8")
    with pytest.raises(ValueError, match="seq"):
        assembler.push(70_000, 0, True, b"\x10\x00", 0.0)
    with pytest.raises(ValueError, match="timestamp"):
        assembler.push(1, -1, True, b"\x10\x00", 0.0)
    with pytest.raises(ValueError, match="payload"):
        assembler.push(1, 0, True, "text", 0.0)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    codec=st.sampled_from(["VP8", "H264"]),
    packets=st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.booleans(), st.binary(max_size=40)),
        max_size=80,
    ),
)
def test_garbage_packets_never_crash_and_memory_stays_bounded(codec: str, packets: list[Packet]) -> None:
    assembler = FrameAssembler(codec, max_packets=32)
    now = 0.0
    for packet in packets:
        now += 0.01
        for frame in assembler.push(*packet, now):
            assert isinstance(frame.data, bytes)
        assembler.nack_list(now)
        assembler.poll(now)
        assembler.keyframe_request(now)
        assert len(assembler) <= 32


def test_padding_only_packets_keep_the_sequence_contiguous() -> None:
    sender = Vp8Sender()
    assembler = FrameAssembler("VP8", loss_deadline=0.1)
    key = sender.frame(0, keyframe=True)
    assert push_all(assembler, key, 0.0) == [key[0][1]]
    for _ in range(3):  # probing padding between frames, same timestamp as the last frame
        assert assembler.push(sender.seq & 0xFFFF, key[0][1], False, b"", 0.01) == []
        sender.seq += 1
    delta = sender.frame(1)
    assert push_all(assembler, delta, 0.02) == [delta[0][1]]
    assert assembler.nack_list(0.03) == []
    assert assembler.poll(1.0) == []
    assert not assembler.waiting_for_keyframe
    assert len(assembler) == 0


def test_h264_keyframe_waits_for_its_lost_parameter_sets_before_jumping() -> None:
    packetizer = H264Packetizer(200)
    sps, pps = b"\x67\x42\xe0\x1f\x11", b"\x68\xce\x3c\x80"
    idr = b"\x65\x88" + b"\x11" * 500
    delta = b"\x41\x9a" + b"\x22" * 100
    assembler = FrameAssembler("H264", loss_deadline=0.1)
    seq = 10

    def packets_of(index: int, *nals: bytes) -> list[Packet]:
        nonlocal seq
        payloads = packetizer.packetize(annex_b(*nals))
        out = [(seq + i, index * 3000, i == len(payloads) - 1, p) for i, p in enumerate(payloads)]
        seq += len(payloads)
        return out

    assert len(push_all(assembler, packets_of(0, sps, pps, idr), 0.0)) == 1
    delta_packets = packets_of(1, delta)
    key_packets = packets_of(2, sps, pps, idr)
    assert key_packets[0][3][0] & 0x1F == 24  # STAP-A with SPS/PPS
    push_all(assembler, delta_packets[1:], 0.01)  # the delta frame's first packet is lost
    # The STAP-A is lost too: the IDR slices are complete but not decodable yet.
    assert push_all(assembler, key_packets[1:], 0.02) == []
    # Its retransmission arrives in time: the whole keyframe goes out, SPS/PPS included.
    (frame,) = assembler.push(*key_packets[0], 0.05)
    assert frame.keyframe and frame.data.startswith(b"\x00\x00\x00\x01" + sps)


def test_h264_parameter_sets_before_a_p_slice_are_not_a_keyframe() -> None:
    packetizer = H264Packetizer(1200)
    sps, pps = b"\x67\x42\xe0\x1f\x11", b"\x68\xce\x3c\x80"
    idr, p_slice = b"\x65\x88" + b"\x11" * 300, b"\x41\x9a" + b"\x22" * 300
    assembler = FrameAssembler("H264")
    seq = 500

    def send(index: int, *nals: bytes) -> list[tuple[int, bool]]:
        nonlocal seq
        payloads = packetizer.packetize(annex_b(*nals))
        released = []
        for i, payload in enumerate(payloads):
            frames = assembler.push(seq, index * 3000, i == len(payloads) - 1, payload, index / 30)
            released += [(frame.timestamp, frame.keyframe) for frame in frames]
            seq += 1
        return released

    # Joining mid-stream: SPS/PPS repeated in front of a P slice must not start decoding.
    assert send(0, sps, pps, p_slice) == []
    assert assembler.waiting_for_keyframe
    assert send(1, sps, pps, idr) == [(3000, True)]
    assert send(2, sps, pps, p_slice) == [(6000, False)]


def test_sender_restarting_its_sequence_numbers_lower_down_is_followed() -> None:
    sender = Vp8Sender(first_seq=40_000)
    assembler = FrameAssembler("VP8")
    for index in range(5):
        push_all(assembler, sender.frame(index, keyframe=index == 0), index / 30)
    assert assembler.frames_released == 5
    sender.seq = 1_000  # restarted, far behind what was seen
    released = []
    for index in range(5, 60):
        released += push_all(assembler, sender.frame(index, keyframe=index == 30), index / 30)
    # The restarted stream is picked up again from its next keyframe.
    assert released and released[0] == sender.timestamp - 29 * 3000
    assert not assembler.waiting_for_keyframe


class LossyFrameSender:
    """Pushes frame ``index`` into an assembler at timestamp ``index * 3000`` and
    arrival ``index / 30``, one sequence number per payload, optionally losing one."""

    def __init__(self, assembler: FrameAssembler) -> None:
        self.assembler = assembler
        self.seq = 0
        self.released: list[int] = []  # timestamps of the frames push() gave back

    def send(self, index: int, payloads: list[bytes], lose: int | None = None) -> None:
        """Push ``payloads`` except the one at position ``lose`` (whose number is used up all the same)."""
        for position, payload in enumerate(payloads):
            if position != lose:
                marker = position == len(payloads) - 1
                self.released.extend(
                    f.timestamp for f in self.assembler.push(self.seq, index * 3000, marker, payload, index / 30)
                )
            self.seq += 1


def test_loss_in_a_non_reference_frame_does_not_cost_a_keyframe() -> None:
    packetizer = Vp8Packetizer(100, picture_id=0)
    assembler = FrameAssembler("VP8", loss_deadline=0.1)
    sender = LossyFrameSender(assembler)
    released = sender.released

    def send(index: int, keyframe: bool = False, non_reference: bool = False, lose: int | None = None) -> None:
        sender.send(index, packetizer.packetize(vp8_bitstream(index, keyframe), non_reference=non_reference), lose)

    send(0, keyframe=True)
    send(1, non_reference=True, lose=1)  # a droppable frame loses a middle packet for good
    send(2)
    send(3)
    assert released == [0]  # frames 2 and 3 wait behind the gap in frame 1
    released.extend(f.timestamp for f in assembler.poll(0.3))
    assert released == [0, 2 * 3000, 3 * 3000]  # frame 1 skipped, the rest decodable
    assert not assembler.waiting_for_keyframe
    assert not assembler.keyframe_request(0.3)
    send(4)
    assert released[-1] == 4 * 3000


def test_loss_in_a_reference_frame_still_waits_for_a_keyframe() -> None:
    packetizer = Vp8Packetizer(100, picture_id=0)
    assembler = FrameAssembler("VP8", loss_deadline=0.1)
    sender = LossyFrameSender(assembler)
    for index, lose in ((0, None), (1, 1), (2, None)):
        sender.send(index, packetizer.packetize(vp8_bitstream(index, index == 0)), lose)
    assert assembler.poll(0.3) == []
    assert assembler.waiting_for_keyframe


def test_h264_non_reference_slice_loss_is_skipped() -> None:
    packetizer = H264Packetizer(200)
    sps, pps = b"\x67\x42\xe0\x1f\x11", b"\x68\xce\x3c\x80"
    idr = b"\x65\x88" + b"\x11" * 500
    reference, droppable = b"\x41\x9a" + b"\x22" * 500, b"\x01\x9a" + b"\x33" * 500  # NRI 2 / NRI 0
    assembler = FrameAssembler("H264", loss_deadline=0.1)
    sender = LossyFrameSender(assembler)
    for index, nals, lose in ((0, (sps, pps, idr), None), (1, (droppable,), 1), (2, (reference,), None)):
        sender.send(index, packetizer.packetize(annex_b(*nals)), lose)
    released = sender.released + [f.timestamp for f in assembler.poll(0.3)]
    assert released == [0, 6000]
    assert not assembler.waiting_for_keyframe


def test_h264_sei_with_zero_nal_ref_idc_does_not_make_a_frame_droppable() -> None:
    packetizer = H264Packetizer(200)
    sps, pps = b"\x67\x42\xe0\x1f\x11", b"\x68\xce\x3c\x80"
    idr, sei = b"\x65\x88" + b"\x11" * 500, b"\x06\x05\x01\x80"
    reference = b"\x41\x9a" + b"\x22" * 500
    assembler = FrameAssembler("H264", loss_deadline=0.1)
    sender = LossyFrameSender(assembler)
    for index, nals, lose in ((0, (sps, pps, idr), None), (1, (sei, reference), 2), (2, (reference,), None)):
        payloads = packetizer.packetize(annex_b(*nals))
        assert index != 1 or payloads[0][0] & 0x1F == 6  # the frame starts with the SEI
        sender.send(index, payloads, lose)
    assert assembler.poll(0.3) == []
    assert assembler.waiting_for_keyframe
