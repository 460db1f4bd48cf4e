"""speakers.py on numbers: the audio-level meter (across RTP timestamp wraps) and the room's speaker changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitewire.server.speakers import ActiveSpeakers, AudioLevelMeter, linear_level

_STEP = 960  # 20 ms at 48 kHz


def _feed(meter: AudioLevelMeter, levels: list[int], ts: int, now: float) -> tuple[int, float]:
    for level in levels:
        meter.observe(level, ts, now)
        ts = (ts + _STEP) & 0xFFFFFFFF
        now += 0.02
    return ts, now


@given(st.integers(0, 0xFFFFFFFF))
def test_talking_then_silence_across_timestamp_wraps(start_ts: int) -> None:
    meter = AudioLevelMeter()
    ts, now = start_ts, 100.0
    # Several wraps' worth would be hours; the window only needs the steps around one, from any start.
    ts, now = _feed(meter, [127] * 20, ts, now)
    assert meter.level(now) == 0.0
    ts, now = _feed(meter, [10] * 20, ts, now)
    assert meter.level(now) == pytest.approx(linear_level(10))
    ts, now = _feed(meter, [127] * 20, ts, now)
    assert meter.level(now) == 0.0


def test_a_wrap_in_the_window_counts_as_one_step() -> None:
    meter = AudioLevelMeter()
    _, now = _feed(meter, [20] * 15, 0xFFFFFFFF - 5 * _STEP, 0.0)
    assert meter.level(now) == pytest.approx(linear_level(20))


def test_short_bursts_and_quiet_voices_are_not_speech() -> None:
    meter = AudioLevelMeter()
    # 60 ms of a loud click in 300 ms: under the 40 % a speaker needs.
    ts, now = _feed(meter, [5] * 3 + [127] * 12, 0, 0.0)
    assert meter.level(now) == 0.0
    # Quieter than -35 dBov all along.
    _, now = _feed(meter, [50] * 15, ts, now)
    assert meter.level(now) == 0.0


def test_part_of_the_window_reads_quieter() -> None:
    meter = AudioLevelMeter()
    _, now = _feed(meter, [127] * 7 + [10] * 8, 0, 0.0)
    assert 0 < meter.level(now) < linear_level(10)


def test_a_stream_that_stops_fades_out_and_late_packets_are_ignored() -> None:
    meter = AudioLevelMeter()
    _, now = _feed(meter, [10] * 15, 1000, 0.0)
    assert meter.level(now) > 0
    meter.observe(0, 1000, now)  # a late packet: its timestamp is behind
    assert meter.level(now + 1.0) == 0.0  # nothing arrived for a second (DTX, a lost link)


def test_memory_is_bounded_and_odd_levels_are_clamped() -> None:
    meter = AudioLevelMeter()
    for index in range(10_000):
        meter.observe(-5 if index % 2 else 999, index * 120, 0.0)
    assert len(meter._samples) <= 64
    with pytest.raises(ValueError, match="clock rate"):
        AudioLevelMeter(clock_rate=0)


def test_room_speaker_changes() -> None:
    speakers = ActiveSpeakers()
    assert speakers.changes({"PA_a": 0.0, "PA_b": 0.0}, 0.0) is None
    started = speakers.changes({"PA_a": 0.3, "PA_b": 0.6}, 0.1)
    assert started is not None
    # Every active speaker, loudest first, levels in steps of 1/8.
    assert [(s.sid, s.level, s.active) for s in started] == [("PA_b", 0.625, True), ("PA_a", 0.375, True)]
    # A small change of level (same step) is nothing; a new step waits for the level interval.
    assert speakers.changes({"PA_a": 0.32, "PA_b": 0.6}, 0.2) is None
    assert speakers.changes({"PA_a": 0.9, "PA_b": 0.6}, 0.3) is None
    moved = speakers.changes({"PA_a": 0.9, "PA_b": 0.6}, 0.7)
    assert moved is not None and [s.sid for s in moved] == ["PA_a", "PA_b"]
    # Someone stopping is sent at once, after the ones still speaking.
    stopped = speakers.changes({"PA_a": 0.9}, 0.75)
    assert stopped is not None
    assert [(s.sid, s.level, s.active) for s in stopped] == [("PA_a", 1.0, True), ("PA_b", 0.0, False)]
    assert dict(speakers.speaking) == {"PA_a": 1.0}
