"""The end-to-end and memory benchmarks: their arithmetic, their markdown, and a short real run."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kitewire.bench import _markdown, e2e, memory
from kitewire.bench._children import (
    hot_spots,
    percentile,
)
from kitewire.bench._peers import PatternStamper, counter_of
from kitewire.bench.procfs import process_cpu_seconds, process_rss_bytes
from kitewire.frames import VideoBufferType, VideoFrame
from kitewire.frames.pattern import read_frame_counter

REPO = Path(__file__).resolve().parents[2]
MS = 1_000_000


# -- markdown sections ----------------------------------------------------------------


def test_replace_section_replaces_only_between_its_markers() -> None:
    text = "# Benchmarks\n\nintro\n\n<!-- bench:e2e -->\nold table\n<!-- /bench:e2e -->\n\noutro\n"
    updated = _markdown.replace_section(text, "e2e", "new table")
    assert updated == "# Benchmarks\n\nintro\n\n<!-- bench:e2e -->\nnew table\n<!-- /bench:e2e -->\n\noutro\n"


def test_replace_section_appends_a_missing_section() -> None:
    updated = _markdown.replace_section("# Benchmarks\n", "memory", "rows")
    assert updated == "# Benchmarks\n\n<!-- bench:memory -->\nrows\n<!-- /bench:memory -->\n"
    again = _markdown.replace_section(updated, "memory", "other rows")
    assert again.count("<!-- bench:memory -->") == 1 and "other rows" in again and "\nrows\n" not in again


def test_an_appended_section_gets_its_heading_outside_the_markers() -> None:
    updated = _markdown.replace_section("# Benchmarks\n", "sfu", "figures", heading="## SFU capacity")
    assert updated == "# Benchmarks\n\n## SFU capacity\n\n<!-- bench:sfu -->\nfigures\n<!-- /bench:sfu -->\n"
    again = _markdown.replace_section(updated, "sfu", "new figures", heading="## SFU capacity")
    assert again.count("## SFU capacity") == 1 and "new figures" in again


def test_replace_section_refuses_an_unclosed_marker() -> None:
    with pytest.raises(ValueError, match="/bench:e2e"):
        _markdown.replace_section("<!-- bench:e2e -->\nhalf", "e2e", "x")


# -- figures --------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)


def test_analyse_matches_counters_and_counts_freezes() -> None:
    start, end = 1_000 * MS, 2_300 * MS
    # 30 captures 1/30 s apart from the window start; each yielded 10 ms later,
    # except counters 10..17 which never arrive (a gap of about 300 ms)
    captures = [(index, start + index * 33 * MS) for index in range(30)]
    frames = [(time_ns + 10 * MS, index, 1280) for index, time_ns in captures if not 10 <= index <= 17]
    frames.append((start + 5 * MS, -1, 1280))  # an unreadable frame counts as delivered, not as a latency
    lags = [(start + i * 10 * MS, float(i % 5), 1.0, 0.0) for i in range(130)]
    # one long callback, one wait for a CPU, one wait for the GIL
    lags += [
        (start + 5 * MS, 30.0, 35.0, 0.0),
        (start + 6 * MS, 12.0, 0.5, 9.0),
        (start + 7 * MS, 14.0, 0.5, 1.0),
    ]
    result = e2e.E2EResult("kitewire", "kitewire")
    e2e.analyse(result, (start, end), captures, frames, lags)
    assert result.window_s == pytest.approx(1.3)
    assert result.captured == 30
    assert result.delivered == 23
    assert result.lost == 8
    assert len(result.latencies_ms) == 22 and all(value == pytest.approx(10.0) for value in result.latencies_ms)
    # the lost run (297 ms), and the window's end 333 ms after the last frame
    assert result.freezes == 2
    assert result.longest_gap_ms == pytest.approx(1300 - (29 * 33 + 10), abs=1)
    assert result.loop_lag_p99_ms == 14.0
    assert (
        result.late_wakes,
        result.late_wakes_loop_busy,
        result.late_wakes_cpu_wait,
    ) == (3, 1, 1)
    assert result.late_wakes_other == 1
    assert "running callbacks in 1, waiting for a CPU in 1" in e2e.format_late_wakes([result])
    assert result.sizes == ["1280"]


def test_analyse_takes_the_latest_capture_of_a_wrapped_counter() -> None:
    start = 10 * MS
    captures = [(5, start), (5 + e2e.COUNTER_MODULO, start + 500 * MS)]
    frames = [(start + 520 * MS, 5, 640)]
    result = e2e.E2EResult("official", "kitewire")
    e2e.analyse(result, (start, start + 1_000 * MS), captures, frames, [])
    assert result.latencies_ms == [pytest.approx(20.0)]
    assert result.loop_lag_p99_ms is None


def test_targets_compare_kitewire_with_the_official_pair() -> None:
    anchor = e2e.E2EResult("official", "official", window_s=1.0, delivered=30, latencies_ms=[12.0] * 10)
    anchor.subscriber_cpu = 0.10
    ours = e2e.E2EResult("kitewire", "kitewire", window_s=1.0, delivered=30, latencies_ms=[11.0] * 10)
    ours.subscriber_cpu, ours.loop_lag_p99_ms = 0.08, 3.0
    assert e2e.misses(ours, anchor) == []
    slow = e2e.E2EResult("kitewire", "kitewire", window_s=1.0, delivered=25, latencies_ms=[20.0] * 10)
    slow.subscriber_cpu, slow.loop_lag_p99_ms = 0.2, 12.0
    missed = e2e.misses(slow, anchor)
    assert "p50 > 15 ms" in missed and "fps < 29.5" in missed and "slower than official pair" in missed
    assert "sub CPU > official sub" in missed and "loop lag p99 >= 10 ms" in missed
    assert "NO:" in e2e.format_row(slow, anchor) and "| anchor |" in e2e.format_row(anchor, anchor)
    assert e2e.format_official_floor([anchor, ours]) == ""  # the official pair meets the targets here
    anchor.latencies_ms = [25.0] * 10
    assert "25.0 ms at p50" in e2e.format_official_floor([ours, anchor])


def test_row_specs_are_validated() -> None:
    assert e2e.parse_rows("kk,ok") == [
        ("kitewire", "kitewire"),
        ("official", "kitewire"),
    ]
    assert e2e.parse_rows(None) == list(e2e.ROWS)
    with pytest.raises(ValueError, match="kk,oo,ko,ok"):
        e2e.parse_rows("kx")
    assert memory.parse_rows("k0") == [memory.MemoryRow("kitewire", 0, 0.2)]
    with pytest.raises(ValueError, match="k1,k0,o1,o0"):
        memory.parse_rows("k2")
    with pytest.raises(ValueError, match="warmup"):
        memory.MemorySettings(seconds=5, warmup=6)
    with pytest.raises(ValueError, match="codec"):
        e2e.E2ESettings(codec="AV1")


def test_memory_growth_and_verdicts() -> None:
    row = memory.MemoryResult(memory.MemoryRow("kitewire", 1, -1.0))
    row.samples = [
        (0.0, 100 * memory.MB),
        (5.0, 120 * memory.MB),
        (10.0, 125 * memory.MB),
    ]
    row.warm_sample = row.samples[1]
    assert row.growth_mb == pytest.approx(5.0)
    assert row.target_met == "yes"
    row.samples.append((15.0, 150 * memory.MB))
    assert row.target_met.startswith("NO: grew 30.0 MB")
    contrast = memory.MemoryResult(
        memory.MemoryRow("kitewire", 0, 0.2),
        samples=row.samples,
        warm_sample=row.warm_sample,
    )
    assert contrast.target_met == "contrast"


def test_proc_readings_of_this_process() -> None:
    assert process_rss_bytes(os.getpid()) > 1_000_000
    before = process_cpu_seconds(os.getpid())
    sum(value * value for value in range(2_000_000))
    assert process_cpu_seconds(os.getpid()) > before


def test_hot_spots_leave_idle_samples_out(tmp_path: Path) -> None:
    profile = tmp_path / "raw.txt"
    profile.write_text(
        "main (a.py:1);decode (b.py:2) 60\n"
        "main (a.py:1);convert (c.py:3) 20\n"
        "main (a.py:1);epoll_wait (libc.so) 500\n"
        "garbage line\n"
    )
    assert hot_spots(profile) == [("decode (b.py:2)", 75.0), ("convert (c.py:3)", 25.0)]


@pytest.mark.parametrize("index", [0, 1, 29, 30, 777, 4095])
def test_stamped_frames_carry_their_counter(index: int) -> None:
    stamper = PatternStamper(320, 180)
    buffer = stamper.stamp(index)
    frame = VideoFrame(320, 180, VideoBufferType.I420, buffer)
    assert read_frame_counter(frame) == index % 4096
    assert counter_of(320, 180, int(VideoBufferType.I420), bytes(buffer)) == index % 4096
    assert counter_of(320, 180, int(VideoBufferType.I420), bytes(10)) is None  # too short: unreadable, no crash


# -- a short real run -----------------------------------------------------------------


def _table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| publisher") and not line.startswith("| subscriber"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _section(text: str, name: str) -> str:
    opening, closing = _markdown.markers(name)
    assert opening in text and closing in text, f"no {name} section in:\n{text}"
    return text[text.index(opening) : text.index(closing)]


@pytest.mark.timeout(500)
def test_the_whole_quick_suite_runs_and_writes_its_tables(tmp_path: Path) -> None:
    """`kitewire bench --quick` (every part: conversions, end to end, SFU capacity,
    memory) runs to completion, prints each table and writes each section; the
    figures' values are not judged here, their shape is. One run serves both
    checks: the suite is the slowest test file's reason to exist."""
    output = tmp_path / "BENCH.md"
    output.write_text("# Benchmarks\n\nkept text\n\n<!-- bench:e2e -->\nstale\n<!-- /bench:e2e -->\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "kitewire",
            "bench",
            "--quick",
            "--seconds",
            "2",
            "--warmup",
            "1",
            "--memory-seconds",
            "3",
            "--output",
            str(output),
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    printed = run.stdout + run.stderr
    assert run.returncode == 0, printed[-4000:]
    assert "| RGBA -> I420 " in printed  # conversions
    for pair in ("kitewire -> kitewire", "official -> official", "kitewire -> official", "official -> kitewire"):
        assert f"| {pair} |" in printed  # end to end
    assert "us/pkt" in printed and "10 subscribers:" in printed  # SFU capacity
    assert "| kitewire capacity=1, never reads |" in printed  # memory
    text = output.read_text()
    assert "kept text" in text and "stale" not in text
    assert "| RGBA -> I420 " in _section(text, "convert") and "us/pkt" in _section(text, "sfu")

    e2e_rows = _table_rows(_section(text, "e2e"))
    assert [row[0] for row in e2e_rows] == [f"{p} -> {s}" for p, s in e2e.ROWS]
    for row in e2e_rows:
        p50, p95, p99 = (float(cell) for cell in row[1:4])
        assert 0 < p50 <= p95 <= p99, row
        fps = float(row[4].split()[0])
        assert fps > 0, row
        assert int(row[5]) >= 0 and int(row[6]) >= 0, row
        assert all(float(cell) >= 0 for cell in row[8:11]), row
        assert float(row[9]) > 0, row  # a decoding subscriber uses some CPU
        assert re.fullmatch(r"\d+(/\d+)*", row[12]), row
        assert float(row[13]) >= 0, row  # the load average beside the figures
        verdict = row[14]
        assert verdict == "anchor" if row[0] == "official -> official" else verdict.startswith(("yes", "NO")), row
    assert "load average" in _section(text, "e2e")

    memory_rows = _table_rows(_section(text, "memory"))
    assert [row[0] for row in memory_rows] == [row.label for row in memory.ROWS]
    for row in memory_rows:
        warm, end = float(row[1]), float(row[2])
        assert warm > 10 and end > 10, row  # a python process with the SDK loaded
        assert float(row[3]) == pytest.approx(end - warm, abs=0.15)
        assert row[5] != "-", row  # the late read got a frame and its age
        assert float(row[6]) >= 0, row  # the load average beside the figures
    by_label = {row[0]: row for row in memory_rows}
    assert int(by_label[memory.ROWS[0].label][4]) == 0  # capacity=1 never reads
    assert int(by_label[memory.ROWS[1].label][4]) > 0  # the slow reader reads
    assert by_label[memory.ROWS[0].label][7].startswith(("yes", "NO")), by_label
    assert by_label[memory.ROWS[1].label][7].startswith("contrast")
    assert by_label[memory.ROWS[2].label][7] == "anchor"


# -- the suite runner -----------------------------------------------------------------


def test_run_captured_returns_status_and_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kitewire.bench import suite

    status, output = suite.run_captured(
        [sys.executable, "-c", "print('row 1'); print('row 2'); raise SystemExit(3)"],
        30,
    )
    assert (status, output) == (3, "row 1\nrow 2\n")
    assert "row 2" in capsys.readouterr().out  # echoed as it came
    section = suite.code_section("kitewire bench convert", output, status, "1.0, 1.0, 1.0")
    assert "exited with status 3" in section and "```\nrow 1\nrow 2\n```" in section


def test_suite_refuses_bad_options_before_running_anything(tmp_path: Path) -> None:
    from kitewire import bench

    def run(*words: str) -> int:
        parser = argparse.ArgumentParser()
        bench.add_arguments(parser)
        return bench.run(parser.parse_args(list(words)))

    output = tmp_path / "B.md"
    assert run("e2e", "--rows", "zz", "--output", str(output)) == 2
    assert run("memory", "--memory-rows", "k9", "--output", str(output)) == 2
    assert not output.exists()


def test_tables_show_the_command_that_reproduces_them() -> None:
    from kitewire.bench import suite

    parser = argparse.ArgumentParser()
    parser.add_argument("benchmark")
    parser.add_argument("--quick", action="store_true")
    suite.add_arguments(parser)
    args = parser.parse_args(
        [
            "all",
            "--quick",
            "--seconds",
            "12.5",
            "--codec",
            "H264",
            "--memory-rows",
            "k1",
        ]
    )
    assert suite.shown_command(args, "e2e") == "kitewire bench all --quick --seconds 12.5 --codec H264"
    assert suite.shown_command(args, "memory") == "kitewire bench all --quick --memory-rows k1"


def test_the_sfu_capacity_module_runs_as_the_suite_starts_it() -> None:
    from kitewire.bench import suite

    done = subprocess.run(
        [sys.executable, "-m", suite.SFU_MODULE, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "--rows" in done.stdout


def test_kitewire_bench_dispatches_the_suite_parts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from kitewire import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    for part in ("e2e", "memory", "load", "all"):
        args = parser.parse_args([part, "--quick", "--rows", "kq", "--output", str(tmp_path / "B.md")])
        assert bench.run(args) == 2, part  # refused by the suite's own option check, before any run
    assert "kk,oo,ko,ok" in capsys.readouterr().err
