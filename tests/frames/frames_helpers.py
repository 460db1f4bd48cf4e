"""Shared builders for the frame tests: reference images in every layout."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from kitewire.frames import VideoBufferType as T
from kitewire.frames import VideoFrame, buffer_size

ALL_TYPES: list[int] = T.values()
PACKED_TYPES: list[int] = [T.RGBA, T.ABGR, T.ARGB, T.BGRA, T.RGB24]
YUV_TYPES: list[int] = [T.I420, T.I420A, T.I422, T.I444, T.I010, T.NV12]
# byte position of R, G, B, A in each packed layout (None: no alpha)
CHANNEL_INDEX: dict[int, tuple[int, int, int, int | None]] = {
    T.RGBA: (0, 1, 2, 3),
    T.ABGR: (3, 2, 1, 0),
    T.ARGB: (1, 2, 3, 0),
    T.BGRA: (2, 1, 0, 3),
    T.RGB24: (0, 1, 2, None),
}
ODD_SIZES: list[tuple[int, int]] = [(1, 1), (3, 5), (2, 1), (1, 2), (641, 479)]


def packed_from_rgba(rgba: npt.NDArray[np.uint8], buffer_type: int) -> npt.NDArray[np.uint8]:
    """Reference re-ordering of an (h, w, 4) RGBA image into a packed layout (numpy indexing)."""
    r, g, b, a = CHANNEL_INDEX[buffer_type]
    channels = 3 if a is None else 4
    out = np.empty(rgba.shape[:2] + (channels,), np.uint8)
    out[..., r] = rgba[..., 0]
    out[..., g] = rgba[..., 1]
    out[..., b] = rgba[..., 2]
    if a is not None:
        out[..., a] = rgba[..., 3]
    return out


def rgba_from_packed(pixels: npt.NDArray[np.uint8], buffer_type: int) -> npt.NDArray[np.uint8]:
    """Reference: any packed layout back to RGBA (alpha 255 when absent)."""
    r, g, b, a = CHANNEL_INDEX[buffer_type]
    out = np.empty(pixels.shape[:2] + (4,), np.uint8)
    out[..., 0] = pixels[..., r]
    out[..., 1] = pixels[..., g]
    out[..., 2] = pixels[..., b]
    out[..., 3] = 255 if a is None else pixels[..., a]
    return out


def random_frame(buffer_type: int, width: int, height: int, seed: int = 0) -> VideoFrame:
    """A frame of random bytes (I010 samples kept to 10 bits)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, buffer_size(buffer_type, width, height), dtype=np.uint8)
    if buffer_type == T.I010:
        data = (data.view("<u2") & 1023).view(np.uint8)
    return VideoFrame(width, height, buffer_type, bytearray(data.tobytes()))


def smooth_rgba(width: int, height: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    """A smooth colourful RGBA image (gradients and slow waves) with varied alpha.

    Smooth content keeps chroma-subsampling differences between converters
    small, so comparisons measure colour maths rather than filter choice.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, 4)
    scale = 2 * np.pi / max(width, height, 8)
    image = np.empty((height, width, 4), np.uint8)
    for channel in range(4):
        wave = np.sin(xs * scale * (channel + 1) * 0.7 + ys * scale * (3 - channel) * 0.5 + phase[channel])
        image[..., channel] = np.clip(128 + 110 * wave, 0, 255).astype(np.uint8)
    return image


def planes_equal(a: VideoFrame, b: VideoFrame) -> bool:
    return bytes(a.data) == bytes(b.data)
