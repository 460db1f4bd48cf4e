"""The soak benchmark's bookkeeping: frames matched as they stream in, freezes, growth verdicts, noise frames."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from kitewire.bench import soak
from kitewire.bench._peers import PatternStamper
from kitewire.frames import VideoBufferType, VideoFrame
from kitewire.frames.pattern import read_frame_counter

MS = 1_000_000
S = 1000 * MS


def _frame_times(count: int, start_ns: int = 0, period_ns: int = 33 * MS) -> list[int]:
    return [start_ns + index * period_ns for index in range(count)]


def test_ledger_counts_frames_lost_and_freezes_as_chunks_arrive() -> None:
    ledger = soak.FrameLedger(start_ns=0)
    captures = [[index, time_ns] for index, time_ns in enumerate(_frame_times(300))]
    # frames 100..109 never arrive: a 10-frame hole is one freeze of ~363 ms
    yields = [[time_ns + 20 * MS, index % 4096, 1280] for index, time_ns in captures if not 100 <= index < 110]
    for chunk in range(0, 300, 30):
        ledger.add_captures(captures[chunk : chunk + 30])
        ledger.add_yields(yields[chunk : chunk + 30])
        ledger.settle(captures[min(chunk + 29, 299)][1])
    ledger.finish(captures[-1][1] + 20 * MS)
    assert (ledger.sent, ledger.received, ledger.lost, ledger.freezes) == (300, 290, 10, 1)
    assert 350 < ledger.longest_gap_ms < 380


def test_ledger_matches_wrapped_counters_to_their_newest_capture() -> None:
    ledger = soak.FrameLedger(start_ns=0)
    count = 4096 + 200
    times = _frame_times(count)
    ledger.add_captures([[index, time_ns] for index, time_ns in enumerate(times)])
    # every frame after the wrap of the 12-bit counter arrives; the ones before it do not
    ledger.add_yields([[time_ns + 10 * MS, index % 4096, 1280] for index, time_ns in enumerate(times) if index >= 4096])
    ledger.finish(times[-1] + 10 * MS)
    assert ledger.lost == 4096 and ledger.received == 200


def test_ledger_counts_a_freeze_still_going_on() -> None:
    ledger = soak.FrameLedger(start_ns=0)
    ledger.add_captures([[index, time_ns] for index, time_ns in enumerate(_frame_times(60))])
    ledger.add_yields([[time_ns + 10 * MS, index, 1280] for index, time_ns in enumerate(_frame_times(30))])
    assert ledger.freezes_at(1 * S) == 0
    # the stream stopped at ~1 s: twenty seconds later, with every report in, it is a freeze
    assert ledger.freezes_at(20 * S) == 1
    ledger.finish(20 * S)
    assert ledger.freezes == 1 and ledger.lost == 30 and ledger.longest_gap_ms > 18_000


def test_ledger_ignores_what_happened_before_its_start() -> None:
    ledger = soak.FrameLedger(start_ns=10 * S)
    ledger.add_captures([[0, 1 * S], [1, 10 * S]])
    ledger.add_yields([[1 * S + 10 * MS, 0, 1280], [10 * S + 10 * MS, 1, 1280]])
    ledger.finish(10 * S + 20 * MS)
    assert (ledger.sent, ledger.received, ledger.lost, ledger.freezes) == (1, 1, 0, 0)


def _sample(elapsed: float, rss_mb: float, fds: int) -> soak.Sample:
    names = soak.process_names()
    return soak.Sample(
        elapsed,
        {"kitewire": (0, 0, 0, 0)},
        dict.fromkeys(names, int(rss_mb * soak.MB)),
        dict.fromkeys(names, fds),
        None,
    )


def test_growth_is_measured_after_the_warmup_and_judged_against_the_targets() -> None:
    settings = soak.SoakSettings(minutes=30)
    assert settings.warmup == 120
    result = soak.SoakResult(samples=[_sample(0, 50, 5), _sample(120, 100, 10), _sample(1800, 105, 10)])
    result.ledgers["kitewire"] = soak.FrameLedger()
    rows = soak.growth(result, settings)
    assert [row.name for row in rows] == soak.process_names()
    assert rows[0].rss_growth == pytest.approx(0.05) and rows[0].flat
    assert soak.verdict(result, settings) == []
    result.samples.append(_sample(1810, 115, 11))
    missed = soak.verdict(result, settings)
    assert "server not flat" in missed and len(missed) == len(soak.process_names())


def test_a_short_soak_warms_up_for_a_third_of_it_and_bad_minutes_are_refused() -> None:
    assert soak.SoakSettings(minutes=3).warmup == 60
    with pytest.raises(ValueError, match="--minutes"):
        soak.SoakSettings(minutes=0)


def test_noise_frames_still_carry_their_counter() -> None:
    stamper = PatternStamper(320, 240, noise=True)
    buffer = stamper.stamp(777)
    luma = buffer[: 320 * 240].reshape(240, 320)
    # the rest of the picture is noise: nothing for the encoder to predict
    assert float(np.std(luma[120:, :].astype(np.float32))) > 60
    assert read_frame_counter(VideoFrame(320, 240, VideoBufferType.I420, buffer)) == 777


def test_kitewire_bench_soak_is_dispatched_and_checks_its_minutes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kitewire import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    output = tmp_path / "B.md"
    args = parser.parse_args(["soak", "--minutes", "-1", "--output", str(output)])
    assert bench.run(args) == 2  # refused before anything starts
    assert "--minutes" in capsys.readouterr().err and not output.exists()


def test_the_soak_section_shows_a_row_a_minute_and_the_verdict() -> None:
    settings = soak.SoakSettings(minutes=3)
    result = soak.SoakResult(samples=[_sample(seconds, 100, 10) for seconds in range(0, 181, 10)])
    result.ledgers["kitewire"] = soak.FrameLedger(lost=2)
    section = soak.render(settings, result, soak.describe_run(settings, "kitewire bench soak --minutes 3"))
    assert section.startswith("## Soak, 1280x720 at 30 fps for 3 minutes")
    rows = [line for line in section.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["0", "60", "120", "180"]
    assert "Targets missed: kitewire pair lost 2 frames." in section
