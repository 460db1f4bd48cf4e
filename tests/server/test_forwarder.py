"""RTP rewriting for downtracks, without any network."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media.packet_history import PacketHistory
from kitewire.media.vp8_descriptor import read_vp8_descriptor
from kitewire.server.forwarder import RtpRewriter


def vp8_payload(picture_id: int, *, keyframe: bool, start: bool = True, tl0: int | None = None) -> bytes:
    """A VP8 RTP payload: descriptor with a 15-bit picture id, then a frame tag byte."""
    first = 0x80 | (0x10 if start else 0)
    ext = 0x80 | (0x40 if tl0 is not None else 0)
    out = bytearray([first, ext, 0x80 | (picture_id >> 8), picture_id & 0xFF])
    if tl0 is not None:
        out.append(tl0)
    out.append(0x00 if keyframe else 0x01)  # frame tag: P bit clear on keyframes
    out += b"\x00" * 20
    return bytes(out)


def test_waits_for_keyframe_then_forwards_continuously() -> None:
    rw = RtpRewriter("video/VP8")
    rw.target_layer = 0
    assert rw.rewrite(0, 100, 9000, vp8_payload(5, keyframe=False), 0.0) is None
    first = rw.rewrite(0, 101, 9000, vp8_payload(6, keyframe=True), 0.0)
    assert first is not None and first.switched
    nxt = rw.rewrite(0, 102, 12000, vp8_payload(7, keyframe=False), 0.033)
    assert nxt is not None
    assert nxt.sequence_number == (first.sequence_number + 1) % 65536
    assert (nxt.timestamp - first.timestamp) % (1 << 32) == 3000


def test_layer_switch_only_at_keyframe_keeps_sequence_and_time_continuous() -> None:
    rw = RtpRewriter("video/VP8")
    rw.target_layer = 0
    low = rw.rewrite(0, 10, 1000, vp8_payload(100, keyframe=True), 0.0)
    assert low is not None
    last = rw.rewrite(0, 11, 4000, vp8_payload(101, keyframe=False), 0.033)
    assert last is not None
    rw.target_layer = 2
    # High-layer delta frames are dropped until its keyframe; low layer no longer forwarded.
    assert rw.rewrite(2, 5000, 777000, vp8_payload(9000, keyframe=False), 0.05) is None
    before_switch = rw.rewrite(0, 12, 7000, vp8_payload(102, keyframe=False), 0.066)
    assert before_switch is not None
    switched = rw.rewrite(2, 5001, 780000, vp8_payload(9001, keyframe=True), 0.1)
    assert switched is not None and switched.switched
    assert rw.current_layer == 2
    # Sequence numbers continue right after the last forwarded packet.
    assert switched.sequence_number == (last.sequence_number + 2) % 65536
    # The timestamp advanced by roughly the wall time since the last frame (0.034 s at 90 kHz).
    advance = (switched.timestamp - last.timestamp) % (1 << 32)
    assert 3000 < advance < 9000
    # Picture ids continue too, so the receiver's frame references stay consistent.
    desc = read_vp8_descriptor(switched.payload)
    prev = read_vp8_descriptor(before_switch.payload)
    assert desc is not None and prev is not None and prev.picture_id is not None
    assert desc.picture_id == (prev.picture_id + 1) % (1 << 15)
    assert rw.rewrite(0, 13, 10000, vp8_payload(103, keyframe=False), 0.11) is None


def test_packets_older_than_the_switch_point_are_dropped() -> None:
    rw = RtpRewriter("video/VP8")
    rw.target_layer = 1
    assert rw.rewrite(1, 200, 0, vp8_payload(1, keyframe=True), 0.0) is not None
    assert rw.rewrite(1, 199, 0, vp8_payload(0, keyframe=False), 0.0) is None
    assert rw.rewrite(1, 201, 0, vp8_payload(1, keyframe=False, start=False), 0.0) is not None


def test_tl0picidx_rewritten_on_switch() -> None:
    rw = RtpRewriter("video/VP8")
    rw.target_layer = 0
    a = rw.rewrite(0, 1, 0, vp8_payload(10, keyframe=True, tl0=50), 0.0)
    assert a is not None
    rw.target_layer = 1
    b = rw.rewrite(1, 900, 0, vp8_payload(2000, keyframe=True, tl0=7), 0.03)
    assert b is not None
    da, db = read_vp8_descriptor(a.payload), read_vp8_descriptor(b.payload)
    assert da is not None and db is not None and da.tl0_pic_idx is not None
    assert db.tl0_pic_idx == (da.tl0_pic_idx + 1) % 256


def test_audio_needs_no_keyframe() -> None:
    rw = RtpRewriter("audio/opus", clock_rate=48000, requires_keyframe=False)
    rw.target_layer = 0
    out = rw.rewrite(0, 5, 960, b"\x01\x02", 0.0)
    assert out is not None and bytes(out.payload) == b"\x01\x02"


@settings(max_examples=60, deadline=None)
@given(start_seq=st.integers(0, 65535), start_ts=st.integers(0, (1 << 32) - 1), count=st.integers(2, 200))
def test_wraparound_keeps_output_contiguous(start_seq: int, start_ts: int, count: int) -> None:
    rw = RtpRewriter("video/H264")
    rw.target_layer = 0
    idr = bytes([0x65, 0x88, 0x80])
    outputs = []
    for i in range(count):
        payload = idr if i == 0 else bytes([0x41, 0x9A])
        result = rw.rewrite(0, (start_seq + i) % 65536, (start_ts + i * 3000) % (1 << 32), payload, i / 30)
        assert result is not None
        outputs.append(result)
    for a, b in zip(outputs, outputs[1:]):
        assert (b.sequence_number - a.sequence_number) % 65536 == 1
        assert (b.timestamp - a.timestamp) % (1 << 32) == 3000


def test_truncated_vp8_payloads_do_not_raise() -> None:
    rw = RtpRewriter("video/VP8")
    rw.target_layer = 0
    for payload in (b"", b"\x80", b"\x90\x80", b"\x90\x80\x80"):
        assert rw.rewrite(0, 1, 1, payload, 0.0) is None


def test_the_downtracks_nack_history() -> None:
    cache = PacketHistory(max_packets=8, max_age=1.0)
    for seq in range(65530, 65536):
        cache.add(seq, bytes([seq & 0xFF]), 0.0)
    cache.add(0, b"zero", 0.0)
    assert cache.get(65535, 0.5) == bytes([0xFF])
    assert cache.get(0, 0.5) == b"zero"
    assert cache.get(65535, 2.0) is None  # too old
    for seq in range(1, 10):
        cache.add(seq, b"new", 0.6)
    assert cache.get(65530, 0.7) is None  # overwritten by a newer packet in its slot
    with pytest.raises(ValueError):
        PacketHistory(max_packets=0)


def test_benchmark_prints_every_step_next_to_the_anchor(capsys: pytest.CaptureFixture[str]) -> None:
    from kitewire.bench import forwarding as bench

    assert bench.main(["--packets", "2000"]) == 0
    out = capsys.readouterr().out
    for step in ("anchor", "parse RTP header", "rewrite", "build outgoing packet", "NACK cache insert", "total"):
        assert step in out
    rows = [line for line in out.splitlines()[1:] if line.strip()]
    assert all(float(row.split()[-2]) > 0 for row in rows)


# -- padding-only packets ------------------------------------------------------


def test_padding_packets_in_order_are_taken_out_without_gaps() -> None:
    from kitewire.server.forwarder import PaddingSequenceMap

    padding = PaddingSequenceMap()
    kinds = "MMPPPMPMMPPM"  # media and padding, as libwebrtc interleaves probes
    start = 65530  # across the wrap
    mapped = [padding.map((start + i) & 0xFFFF, kind == "P") for i, kind in enumerate(kinds)]
    assert [m is None for m in mapped] == [kind == "P" for kind in kinds]
    media = [m for m in mapped if m is not None]
    assert media == [(start + i) & 0xFFFF for i in range(len(media))]
    assert padding.padding_dropped == kinds.count("P")
    # A duplicate of a dropped padding packet stays dropped; a duplicate media packet keeps its number.
    assert padding.map((start + 2) & 0xFFFF, True) is None
    assert padding.map((start + 5) & 0xFFFF, False) == media[2]


def test_late_media_packet_is_numbered_by_the_padding_before_it() -> None:
    from kitewire.server.forwarder import PaddingSequenceMap

    padding = PaddingSequenceMap()
    assert padding.map(100, False) == 100
    # 101 is lost on the uplink (the server NACKs it); padding 102 and 103 arrive.
    assert padding.map(102, True) is None
    assert padding.map(103, True) is None
    assert padding.map(104, False) == 102
    # The retransmission of 101 fills exactly the hole between 100 and 102.
    assert padding.map(101, False) == 101


def test_late_padding_keeps_its_slot() -> None:
    from kitewire.server.forwarder import PaddingSequenceMap

    padding = PaddingSequenceMap()
    assert padding.map(10, False) == 10
    assert padding.map(12, False) == 12
    # Padding 11 arrives after 12: 12 was numbered with it counted, so it is
    # forwarded (empty) rather than leaving 11 missing for ever.
    assert padding.map(11, True) == 11


def test_packets_older_than_the_remembered_drops_are_refused() -> None:
    from kitewire.server.forwarder import PaddingSequenceMap

    padding = PaddingSequenceMap(history=4)
    assert padding.map(0, False) == 0
    for seq in range(2, 8):
        assert padding.map(seq, True) is None
    assert padding.map(8, False) == 2
    # 1 came before six drops but only four are remembered: it cannot be numbered safely.
    assert padding.map(1, False) is None
    with pytest.raises(ValueError, match="history"):
        PaddingSequenceMap(history=0)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 65535),
    kinds=st.lists(st.booleans(), min_size=1, max_size=300),
    swaps=st.lists(st.integers(0, 299), max_size=40),
)
def test_forwarded_packets_stay_contiguous_and_ordered_under_reordering(
    start: int, kinds: list[bool], swaps: list[int]
) -> None:
    from kitewire.server.forwarder import PaddingSequenceMap

    order = list(range(len(kinds)))
    for position in swaps:  # neighbouring packets swapped: network reordering
        if position + 1 < len(order):
            order[position], order[position + 1] = order[position + 1], order[position]
    padding = PaddingSequenceMap()
    kept: dict[int, int] = {}
    for index in order:
        mapped = padding.map((start + index) & 0xFFFF, kinds[index])
        if mapped is None:
            assert kinds[index], "a media packet was dropped"
        else:
            kept[index] = mapped
    # Whatever is forwarded fills one gap-free run of outgoing numbers, in the
    # publisher's order: the subscriber never waits for a number that will not come.
    indexes = sorted(kept)
    if not indexes:
        assert all(kinds)
        return
    first = kept[indexes[0]]
    assert [kept[i] for i in indexes] == [(first + n) & 0xFFFF for n in range(len(indexes))]
    if order == sorted(order):
        assert len(kept) == kinds.count(False)
