"""``kitewire bench audio``: beeps are matched to what was heard, and a short kitewire row through
a real server yields figures."""

from __future__ import annotations

import pytest
from kitewire.bench.audio import AudioRow, format_table, match, run_benchmark


def test_each_beep_is_matched_to_the_first_onset_after_it() -> None:
    ms = 1_000_000
    beeps = [0, 500 * ms, 1000 * ms]
    heard = [30 * ms, 90 * ms, 520 * ms, 2000 * ms]
    assert match(beeps, heard) == [30.0, 20.0]  # the third beep was never heard within 400 ms


def test_table_puts_rows_beside_the_official_pair() -> None:
    rows = [
        AudioRow("kitewire", "kitewire", [10.0, 12.0, 14.0], 3),
        AudioRow("official", "official", [100.0, 120.0, 140.0], 3),
        AudioRow("kitewire", "official", [], 3, error="peer failed"),
    ]
    table = format_table(rows)
    assert "| kitewire -> kitewire | 3/3 | 12.0 | 14.0 | 0.10x |" in table
    assert "| official -> official | 3/3 | 120.0 | 140.0 | anchor |" in table
    assert "peer failed" in table


@pytest.mark.timeout(120)
async def test_a_short_kitewire_row_hears_its_beeps() -> None:
    (row,) = await run_benchmark(4.0, [("kitewire", "kitewire")])
    assert row.error is None
    # how many and how fast depends on the machine's load: that is the benchmark's to report
    assert row.beeps >= 6 and row.latencies_ms
    assert all(0 < latency < 400 for latency in row.latencies_ms)
