"""Lip sync of a remote media stream: sender clocks from sender reports, pictures held to their audio."""

from __future__ import annotations

import pytest
from kitewire.engine.lipsync import SenderClock, StreamSync
from kitewire.transport.rtcp import SenderReport, ntp_from_unix


def test_a_sender_clock_puts_timestamps_on_the_senders_wall_clock_across_the_rtp_wrap() -> None:
    clock = SenderClock(90000)
    assert clock.capture_time(7, 1234) is None  # no report yet
    clock.on_sender_report(SenderReport(7, ntp_from_unix(1_800_000_000.0), 0xFFFF_FFF0, 0, 0))
    # 90 000 ticks after the reported timestamp (wrapped past 2**32) is a second later
    later = clock.capture_time(7, (0xFFFF_FFF0 + 90000) & 0xFFFFFFFF)
    earlier = clock.capture_time(7, 0xFFFF_FFF0 - 45000)
    assert later is not None and abs(later - 1_800_000_001.0) < 1e-5
    assert earlier is not None and abs(earlier - 1_799_999_999.5) < 1e-5
    assert clock.capture_time(8, 1234) is None  # a report of another SSRC says nothing of this one
    with pytest.raises(ValueError, match="clock rate"):
        SenderClock(0)


def test_a_picture_waits_until_it_is_as_late_as_its_audio_and_no_longer_than_the_bound() -> None:
    sync = StreamSync(max_hold=0.2)
    now = 1000.0
    assert sync.video_hold(now - 0.01, now) == 0.0  # no audio: nothing to wait for
    for n in range(10):
        sync.audio_played(now - 0.06 + n * 0.0001, now)  # the audio plays 60 ms behind its capture
    assert sync.video_hold(now - 0.01, now) == pytest.approx(0.05, abs=0.001)  # 10 ms late: 50 more
    assert sync.video_hold(now - 0.08, now) == 0.0  # later than the audio already: not held
    for _ in range(25):
        sync.audio_played(now - 0.9, now)  # the audio falls far behind
    assert sync.video_hold(now - 0.01, now) == 0.2  # held at most the bound
    assert sync.video_hold(now - 0.01, now + 1.5) == 0.0  # the audio stopped: its lateness is stale
    assert sync.pictures_held == 2 and sync.seconds_held == pytest.approx(0.25, abs=0.001)


def test_one_odd_audio_piece_does_not_jolt_the_pictures() -> None:
    sync = StreamSync()
    now = 50.0
    for _ in range(20):
        sync.audio_played(now - 0.04, now)
    sync.audio_played(now - 0.5, now)  # a batch delivered after a stall
    assert sync.video_hold(now - 0.01, now) == pytest.approx(0.03, abs=0.001)
    with pytest.raises(ValueError, match="max_hold"):
        StreamSync(max_hold=5)
