"""``kitewire demo`` runs to completion and writes its PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2


def test_demo_command_writes_a_png(tmp_path: Path) -> None:
    output = tmp_path / "nested" / "frame.png"
    result = subprocess.run(
        [sys.executable, "-m", "kitewire", "demo", "--seconds", "3", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert str(output) in result.stdout
    assert "fps" in result.stdout and "latency" in result.stdout and "kbps" in result.stdout
    image = cv2.imread(str(output))
    assert image is not None and image.shape == (720, 1280, 3)


def test_demo_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kitewire", "demo", "--seconds", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--seconds" in result.stderr
