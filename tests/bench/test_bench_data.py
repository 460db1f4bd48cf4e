"""The data benchmark runs as documented and prints a row per pair with positive figures."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(240)


def test_the_data_benchmark_prints_every_pair() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "kitewire.bench.data", "--repeats", "2", "--megabytes", "1"],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split() for line in run.stdout.splitlines() if "->" in line and not line.startswith("sender")]
    assert [row[:3] for row in rows] == [
        ["official", "->", "official"],
        ["official", "->", "kitewire"],
        ["kitewire", "->", "official"],
        ["kitewire", "->", "kitewire"],
    ]
    for row in rows:
        metadata, rpc, throughput = (float(value) for value in row[3:6])
        assert metadata > 0 and rpc > 0 and throughput > 0
    assert rows[0][6:] == ["1.0", "/", "1.0", "/", "1.00"]  # the anchor against itself


def test_the_data_benchmark_refuses_bad_options() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "kitewire.bench.data", "--repeats", "0"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "--repeats" in run.stderr
