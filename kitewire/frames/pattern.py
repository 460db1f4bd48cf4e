"""Test patterns: frames that say which frame they are, and frames that load an encoder.

:func:`make_pattern_frame` draws a frame counter as large black and white
blocks over a moving gradient; :func:`read_frame_counter` reads it back from
any received frame (after lossy coding, scaling or a layout conversion), or
says it cannot. The demo, the benchmarks and the tests count frames with
these. :func:`textured_frames` makes content whose encoding costs what real
video costs, for the load test and the codec benchmark.
"""

from __future__ import annotations

import functools
from typing import Any

import av
import cv2  # opencv-python-headless: smooth texture for the encoder-load frames
import numpy as np
import numpy.typing as npt

from .enums import VideoBufferType
from .video_frame import VideoFrame

__all__ = ["make_pattern_frame", "read_frame_counter", "textured_frames"]

# the counter band: 16 blocks across the top quarter; 12 bits of counter and a
# 4-bit check so a misread frame is rejected instead of reported as a wrong number
_BITS = 16
_COUNTER_BITS = 12
_COUNTER_MODULO = 1 << _COUNTER_BITS
_BLACK = 16
_WHITE = 235


def _check_nibble(counter: int) -> int:
    return ((counter & 0xF) ^ ((counter >> 4) & 0xF) ^ ((counter >> 8) & 0xF) ^ 0xA) & 0xF


@functools.lru_cache(maxsize=8)
def _diagonal(width: int, height: int) -> npt.NDArray[np.int32]:
    rows = np.arange(height, dtype=np.int32)[:, None]
    columns = np.arange(width, dtype=np.int32)[None, :]
    return rows + columns


def make_pattern_frame(index: int, width: int = 1280, height: int = 720) -> VideoFrame:
    """An I420 frame: the counter ``index`` (mod 4096) as blocks, over a moving gradient."""
    if width < 32 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"expected an even size of at least 32x16, got {width}x{height}")
    counter = index % _COUNTER_MODULO
    word = (counter << 4) | _check_nibble(counter)
    luma = np.empty((height, width), dtype=np.uint8)
    band = height // 4
    # a diagonal gradient sliding 6 pixels per frame: visible motion for the encoder
    luma[band:] = ((_diagonal(width, height)[band:] + index * 6) % 200 + 28).astype(np.uint8)
    block = width // _BITS
    for bit in range(_BITS):
        value = _WHITE if (word >> (_BITS - 1 - bit)) & 1 else _BLACK
        luma[:band, bit * block : (bit + 1) * block] = value
    luma[:band, _BITS * block :] = _BLACK
    # colour drifting the other way in the chroma planes; neutral under the counter
    chroma_band = band // 2
    diagonal = _diagonal(width // 2, height // 2)
    u_plane = (128 + 60 * np.sin((diagonal - index * 4) / 40.0)).astype(np.uint8)
    v_plane = (128 + 60 * np.cos((diagonal + index * 2) / 55.0)).astype(np.uint8)
    u_plane[:chroma_band] = 128
    v_plane[:chroma_band] = 128
    data = luma.tobytes() + u_plane.tobytes() + v_plane.tobytes()
    return VideoFrame(width, height, VideoBufferType.I420, data)


def read_frame_counter(frame: VideoFrame) -> int | None:
    """The counter drawn by :func:`make_pattern_frame`, or None if it cannot be read."""
    if int(frame.type) != VideoBufferType.I420:
        frame = frame.convert(VideoBufferType.I420)
    width, height = frame.width, frame.height
    luma = np.frombuffer(bytes(frame.data[: width * height]), dtype=np.uint8).reshape(height, width)
    band = height // 4
    block = width // _BITS
    word = 0
    for bit in range(_BITS):
        x0, x1 = bit * block + block // 4, (bit + 1) * block - block // 4
        y0, y1 = band // 4, band - band // 4
        level = float(luma[y0:y1, x0:x1].mean())
        word = (word << 1) | (1 if level > 128 else 0)
    counter, check = word >> 4, word & 0xF
    if _check_nibble(counter) != check:
        return None
    return counter


def textured_frames(width: int, height: int, count: int, seed: int = 5) -> list[av.VideoFrame]:
    """Encoder load: smooth random texture panning, a sliding box, a flashing bar (no counter).

    Smooth (upscaled) noise keeps libvpx near its target bitrate; raw noise
    would make every frame a worst case. Used where the content's cost matters,
    not its identity: the load test's encoded loop and the codec benchmark.
    """

    rng = np.random.default_rng(seed)
    pan = 4
    tex_w = width + pan * count
    small = rng.integers(0, 256, (max(2, height // 16), max(2, tex_w // 16)), dtype=np.uint8)
    texture: np.ndarray[Any, np.dtype[np.uint8]] = np.asarray(
        cv2.resize(small, (tex_w, height), interpolation=cv2.INTER_CUBIC), dtype=np.uint8
    )
    box = max(8, width // 8)
    frames: list[av.VideoFrame] = []
    chroma_rows = height // 4
    for index in range(count):
        luma: np.ndarray[Any, np.dtype[np.uint8]] = texture[:, index * pan : index * pan + width].copy()
        left = (index * max(1, width // 100)) % max(1, width - box)
        top = height // 4
        luma[top : top + box, left : left + box] = 235
        bar = height * 5 // 9
        luma[bar : bar + max(2, height // 36), :] = (index * 7) % 256
        u_plane = np.full((chroma_rows, width), (96 + index) % 256, dtype=np.uint8)
        v_plane = np.full((chroma_rows, width), 160, dtype=np.uint8)
        frames.append(av.VideoFrame.from_ndarray(np.concatenate([luma, u_plane, v_plane]), format="yuv420p"))
    return frames
