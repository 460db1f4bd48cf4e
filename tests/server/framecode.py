"""A frame counter drawn in pixels that survives lossy video coding and scaling.

The frame is a 4x4 grid of black or white blocks: 12 bits of counter and a
4-bit check (sum of the counter's nibbles). Reading samples each block's
centre, so any resolution works.
"""

from __future__ import annotations

import numpy as np

GRID = 4


def _bits(counter: int) -> list[int]:
    value = counter & 0xFFF
    check = ((value & 0xF) + ((value >> 4) & 0xF) + ((value >> 8) & 0xF)) & 0xF
    word = (value << 4) | check
    return [(word >> (15 - i)) & 1 for i in range(16)]


def draw_counter(counter: int, width: int, height: int) -> np.ndarray:
    """An RGBA frame (height, width, 4) showing ``counter``."""
    frame = np.zeros((height, width, 4), dtype=np.uint8)
    frame[..., 3] = 255
    bh, bw = height // GRID, width // GRID
    for index, bit in enumerate(_bits(counter)):
        if bit:
            row, col = divmod(index, GRID)
            frame[row * bh : (row + 1) * bh, col * bw : (col + 1) * bw, :3] = 255
    return frame


def read_counter(rgba: np.ndarray) -> int | None:
    """The counter in a received RGBA frame, or None when the check fails."""
    height, width = rgba.shape[:2]
    bh, bw = height / GRID, width / GRID
    word = 0
    for index in range(16):
        row, col = divmod(index, GRID)
        y0, y1 = int(row * bh + bh * 0.3), int(row * bh + bh * 0.7)
        x0, x1 = int(col * bw + bw * 0.3), int(col * bw + bw * 0.7)
        level = float(rgba[y0 : y1 + 1, x0 : x1 + 1, :3].mean())
        word = (word << 1) | (1 if level > 128 else 0)
    value, check = word >> 4, word & 0xF
    if ((value & 0xF) + ((value >> 4) & 0xF) + ((value >> 8) & 0xF)) & 0xF != check:
        return None
    return value
