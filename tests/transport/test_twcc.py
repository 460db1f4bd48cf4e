"""The receive-side transport-wide CC recorder that feeds our feedback packets."""

from __future__ import annotations

from kitewire.transport.rtcp import TransportCcFeedback, parse_rtcp
from kitewire.transport.twcc import TwccRecorder


def feedback(recorder: TwccRecorder) -> list[TransportCcFeedback]:
    out = []
    for packet in recorder.build(sender_ssrc=1):
        (parsed,) = parse_rtcp(packet)
        assert isinstance(parsed, TransportCcFeedback)
        out.append(parsed)
    return out


def test_wraparound_reordering_and_losses() -> None:
    recorder = TwccRecorder()
    base_us = 5_000_000
    arrivals = {65533: 0, 65535: 2000, 65534: 3000, 1: 4000, 2: 6000}  # 0 lost, 65534 late
    for seq, offset in arrivals.items():
        recorder.record(seq, base_us + offset, media_ssrc=77)
    (fb,) = feedback(recorder)
    assert fb.media_ssrc == 77 and fb.base_sequence == 65533
    reported = dict(fb.packets)
    assert list(reported) == [65533, 65534, 65535, 0, 1, 2]
    assert reported[0] is None
    for seq, offset in arrivals.items():
        got = reported[seq]
        assert got is not None and 0 <= base_us + offset - got < 250
    # nothing new: no feedback; then the next one continues after the last
    assert feedback(recorder) == []
    recorder.record(3, base_us + 9000, media_ssrc=77)
    (next_fb,) = feedback(recorder)
    assert next_fb.base_sequence == 3 and next_fb.feedback_count == fb.feedback_count + 1


def test_late_packets_after_feedback_are_ignored_and_memory_is_bounded() -> None:
    recorder = TwccRecorder()
    for seq in range(100):
        recorder.record(seq, 1_000_000 + seq * 1000, media_ssrc=1)
    assert sum(len(f.packets) for f in feedback(recorder)) == 100
    recorder.record(50, 2_000_000, media_ssrc=1)  # already reported
    assert feedback(recorder) == []
    # nobody drains it: it forgets the oldest instead of growing
    for seq in range(100, 100 + 20_000):
        recorder.record(seq & 0xFFFF, 3_000_000 + seq, media_ssrc=1)
    assert len(recorder._arrivals) <= 4 * TwccRecorder.MAX_SPAN + 1
    packets = [p for f in feedback(recorder) for p in f.packets]
    assert len(packets) <= TwccRecorder.MAX_SPAN
