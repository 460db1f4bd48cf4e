"""``kitewire bench av-sync``: flashes are paired with their beeps, the first pair is left out,
and the table puts each row beside the official pair."""

from __future__ import annotations

from kitewire.bench.av_sync import Onsets, SyncRow, beeping, format_table, settled_skew


def test_each_flash_is_paired_with_the_nearest_beep_within_half_a_period() -> None:
    onsets = Onsets(flashes=[1.00, 2.03, 3.50], beeps=[1.05, 2.00, 4.40])
    offsets = onsets.offsets()
    # the third flash has no beep within 0.5 s
    assert [round(o * 1000) for o in offsets] == [-50, 30]


def test_the_settled_skew_leaves_out_the_first_pair() -> None:
    assert settled_skew([0.3, -0.01, -0.03, -0.02]) == -0.02
    assert settled_skew([0.3]) is None


def test_the_clip_beeps_for_a_fifth_of_every_second_from_the_first() -> None:
    assert not beeping(0.1)
    assert beeping(1.0) and beeping(2.19) and not beeping(2.21)


def test_table_puts_rows_beside_the_official_pair() -> None:
    rows = [
        SyncRow("official", "official", [-40.0, -30.0, -35.0], [9, 9, 9]),
        SyncRow("kitewire", "official", [-31.0, -29.0, -33.0], [9, 9, 9]),
        SyncRow("kitewire", "kitewire", [], [], error="peer failed"),
    ]
    table = format_table(rows)
    assert "| official -> official | 3 | -35.0 | -40, -30, -35 | anchor |" in table
    assert "| kitewire -> official | 3 | -31.0 | -31, -29, -33 | +4.0 ms |" in table
    assert "| kitewire -> kitewire | 0 | - | - | peer failed |" in table
