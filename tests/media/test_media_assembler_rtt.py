"""FrameAssembler under loss: NACK retries, give-up and keyframe requests follow the measured round trip."""

from __future__ import annotations

from kitewire.media import FrameAssembler, Vp8Packetizer

Packet = tuple[int, int, bool, bytes]


def vp8_frames(count: int, packets_per_frame: int = 3) -> list[list[Packet]]:
    """``count`` synthetic VP8 frames (the first a keyframe) as RTP fields, sequence numbers from 100."""
    packetizer = Vp8Packetizer(100, picture_id=0)
    frames: list[list[Packet]] = []
    seq = 100
    for index in range(count):
        header = b"\x50\x42\x00\x9d\x01\x2a\x80\x02\xe0\x01" if index == 0 else b"\x31\x05\x00"
        payloads = packetizer.packetize(header + bytes([index]) * (90 * packets_per_frame - 20))
        timestamp = 3000 * (index + 1)
        frames.append([(seq + i, timestamp, i == len(payloads) - 1, p) for i, p in enumerate(payloads)])
        seq += len(payloads)
    return frames


def push(assembler: FrameAssembler, packets: list[Packet], now: float) -> list[int]:
    return [frame.timestamp for packet in packets for frame in assembler.push(*packet, now)]


def test_a_retransmission_answering_one_nack_measures_the_round_trip() -> None:
    key, delta, following = vp8_frames(3)
    assembler = FrameAssembler("VP8", nack_interval=0.02)
    push(assembler, key, 0.0)
    lost = delta[1]
    push(assembler, [delta[0], delta[2], *following], 0.01)
    assert assembler.round_trip_time is None
    assert assembler.nack_list(0.01) == [lost[0]]
    assert push(assembler, [lost], 0.09) == [delta[0][1], following[0][1]]
    assert assembler.round_trip_time is not None
    assert abs(assembler.round_trip_time - 0.08) < 1e-9


def test_a_packet_nacked_several_times_gives_no_round_trip_sample() -> None:
    key, delta = vp8_frames(2)
    assembler = FrameAssembler("VP8", nack_interval=0.02)
    push(assembler, key, 0.0)
    push(assembler, [delta[0], delta[2]], 0.01)
    assert assembler.nack_list(0.01) and assembler.nack_list(0.05)
    push(assembler, [delta[1]], 0.06)
    assert assembler.round_trip_time is None  # which NACK was answered is unknown


def slow_path_assembler(rtt: float) -> tuple[FrameAssembler, list[list[Packet]]]:
    """An assembler that measured ``rtt`` on one recovered packet, and the frames still to send."""
    frames = vp8_frames(8)
    assembler = FrameAssembler("VP8", nack_interval=0.02, loss_deadline=0.12, keyframe_request_interval=0.25)
    push(assembler, frames[0], 0.0)
    push(assembler, [frames[1][0], frames[1][2]], 0.01)
    assert assembler.nack_list(0.01) == [frames[1][1][0]]
    push(assembler, [frames[1][1]], 0.01 + rtt)
    assert assembler.round_trip_time == rtt
    return assembler, frames[2:]


def test_on_a_slow_path_nack_retries_are_spaced_by_the_round_trip() -> None:
    assembler, frames = slow_path_assembler(rtt=0.2)
    start = 1.0
    push(assembler, [frames[0][0], frames[0][2]], start)
    missing = frames[0][1][0]
    assert assembler.nack_list(start) == [missing]
    # the configured 20 ms would resend long before the answer can be back
    assert assembler.nack_list(start + 0.05) == []
    assert assembler.nack_list(start + 0.25) == []
    assert assembler.nack_list(start + 0.31) == [missing]


def test_on_a_slow_path_a_missing_packet_is_waited_for_over_several_round_trips() -> None:
    assembler, frames = slow_path_assembler(rtt=0.2)
    assert assembler.effective_loss_deadline > 3 * 0.2
    start = 1.0
    push(assembler, [frames[0][0], frames[0][2], *frames[1]], start)
    assembler.nack_list(start)
    assert assembler.poll(start + 0.3) == []
    assert not assembler.waiting_for_keyframe  # a fixed 120 ms deadline would have given up
    assert not assembler.keyframe_request(start + 0.3)
    released = push(assembler, [frames[0][1]], start + 0.4)  # the retransmission, two round trips later
    assert released == [frames[0][0][1], frames[1][0][1]]


def test_on_a_fast_path_the_configured_deadline_still_applies() -> None:
    assembler, frames = slow_path_assembler(rtt=0.002)
    assert assembler.effective_loss_deadline == 0.12
    start = 1.0
    push(assembler, [frames[0][0], frames[0][2], *frames[1]], start)
    assert assembler.poll(start + 0.2) == []
    assert assembler.waiting_for_keyframe
    assert assembler.keyframe_request(start + 0.2)


def test_keyframe_requests_are_not_repeated_within_two_round_trips() -> None:
    assembler, frames = slow_path_assembler(rtt=0.2)
    start = 1.0
    push(assembler, frames[0][1:], start)  # the first packet of a frame never comes
    assert assembler.poll(start + 1.0) == []
    assert assembler.keyframe_request(start + 1.0)
    assert not assembler.keyframe_request(start + 1.3)  # 250 ms passed, but the keyframe cannot be back yet
    assert assembler.keyframe_request(start + 1.41)


def test_nack_retries_continue_until_the_deadline_by_default() -> None:
    key, delta = vp8_frames(2)
    assembler = FrameAssembler("VP8", nack_interval=0.02, loss_deadline=0.12)
    push(assembler, key, 0.0)
    push(assembler, [delta[0], delta[2]], 0.0)
    sent = sum(1 for step in range(12) if assembler.nack_list(step * 0.01))
    assert sent >= 5  # a lost NACK or retransmission gets several more chances within the deadline
