"""Optional libyuv engine, called through ctypes.

libyuv is the library livekit converts with, so where it is installed
(Debian/Ubuntu package ``libyuv0``) kitewire uses it for the RGB <-> YUV pairs
it covers: results then equal livekit's, and its AVX2 code beats OpenCV's
for these pairs. ctypes releases the GIL for the length of each call. When
the shared library is absent (or ``KITEWIRE_LIBYUV=0`` is set) every pair
falls back to the OpenCV/numpy engine in :mod:`kitewire.frames.convert`.

libyuv names packed layouts by their 32-bit word read little-endian, the
reverse of livekit's byte order: livekit RGBA (bytes R, G, B, A) is libyuv
"ABGR", and livekit RGB24 (bytes R, G, B) is libyuv "RAW".

A negative height makes libyuv flip: it reads the source bottom-up in
RGB -> YUV functions and writes the target bottom-up in YUV -> RGB ones, the
same convention :func:`kitewire.frames.convert.convert_buffer` follows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Any, Final, cast

import cv2
import numpy as np
import numpy.typing as npt

from ._samples import widen_to_10bit
from .enums import VideoBufferType as T

AnyArray = npt.NDArray[Any]

# livekit layout -> libyuv's name for the same bytes
_LIBYUV_NAME: Final[dict[int, str]] = {
    T.RGBA: "ABGR",
    T.BGRA: "ARGB",
    T.ARGB: "BGRA",
    T.ABGR: "RGBA",
    T.RGB24: "RAW",
}
_YUV_PREFIX: Final[dict[int, str]] = {
    T.I420: "I420",
    T.I420A: "I420Alpha",
    T.I422: "I422",
    T.I444: "I444",
    T.NV12: "NV12",
    T.I010: "I010",
}
# a four-byte layout reachable from another by reversing each pixel's bytes
_BYTE_REVERSED: Final[dict[int, int]] = {T.ARGB: T.BGRA, T.ABGR: T.RGBA}
_ALPHA_INDEX: Final[dict[int, int]] = {T.RGBA: 3, T.BGRA: 3, T.ARGB: 0, T.ABGR: 0}

_P = ctypes.c_void_p
_I = ctypes.c_int


def _load() -> ctypes.CDLL | None:
    if os.environ.get("KITEWIRE_LIBYUV", "1") == "0":
        return None
    candidates = ["libyuv.so.0", "libyuv.so"]
    found = ctypes.util.find_library("yuv")
    if found:
        candidates.insert(0, found)
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


_library: ctypes.CDLL | None = _load()
_enabled = _library is not None
_functions: dict[str, Callable[..., int] | None] = {}


def available() -> bool:
    """Whether the libyuv shared library was found."""
    return _library is not None


def enabled() -> bool:
    """Whether conversions currently use libyuv."""
    return _enabled and _library is not None


def set_enabled(flag: bool) -> bool:
    """Switch the libyuv engine on or off (benchmarks and tests compare both); returns the old state."""
    global _enabled
    previous = _enabled
    _enabled = bool(flag)
    return previous


def _function(name: str, argument_types: list[Any]) -> Callable[..., int] | None:
    """The libyuv function ``name`` (cached), or None if this libyuv lacks it."""
    if name in _functions:
        return _functions[name]
    function: Any = None
    if _library is not None:
        try:
            function = getattr(_library, name)
        except AttributeError:
            function = None
    if function is not None:
        function.restype = _I
        function.argtypes = argument_types
    _functions[name] = function
    return cast("Callable[..., int] | None", function)


def _planes_function(name: str, plane_count: int, extra_ints: int = 2) -> Callable[..., int] | None:
    """A function taking ``plane_count`` (pointer, stride) pairs then ints (width, height, ...)."""
    return _function(name, [_P, _I] * plane_count + [_I] * extra_ints)


def _pointer(array: AnyArray) -> int:
    return int(array.ctypes.data)


def _plane_arguments(plane: AnyArray) -> list[int]:
    """(pointer, stride) of a plane; libyuv counts 16-bit strides in samples."""
    samples_per_row = plane.shape[1] * (plane.shape[2] if plane.ndim == 3 else 1)
    return [_pointer(plane), samples_per_row]


def _call(name: str, planes: list[AnyArray], *ints: int) -> bool:
    """Call a libyuv (pointer, stride)... width, height function; False if absent or failing."""
    function = _planes_function(name, len(planes), len(ints))
    if function is None:
        return False
    arguments: list[int] = []
    for plane in planes:
        arguments += _plane_arguments(plane)
    return function(*arguments, *ints) == 0


def _has(name: str) -> bool:
    return _library is not None and hasattr(_library, name)


def shuffle_packed(
    source_type: int, source: AnyArray, target_type: int, target: AnyArray, width: int, height: int, flip_y: bool
) -> bool:
    """Reorder the bytes of four-byte pixels in one pass (libyuv ARGBShuffle)."""
    if not enabled() or source_type not in _ALPHA_INDEX or target_type not in _ALPHA_INDEX:
        return False
    function = _function("ARGBShuffle", [_P, _I, _P, _I, _P, _I, _I])
    if function is None:
        return False
    source_order, target_order = T.Name(source_type), T.Name(target_type)
    per_pixel = [source_order.index(channel) for channel in target_order]
    mask = (ctypes.c_uint8 * 16)(*[pixel * 4 + index for pixel in range(4) for index in per_pixel])
    signed_height = -height if flip_y else height
    result = function(
        _pointer(source), width * 4, _pointer(target), width * 4, ctypes.addressof(mask), width, signed_height
    )
    return result == 0


def reversed_to_rgb24(
    source_type: int, source: AnyArray, target: AnyArray, width: int, height: int, flip_y: bool
) -> bool:
    """ABGR/ARGB -> RGB24 through cache-sized BGRA bands (libyuv has no direct function)."""
    if not enabled() or source_type not in (T.ABGR, T.ARGB):
        return False
    if not via_bgra_bands(
        source_type,
        source,
        [target],
        width,
        height,
        lambda bgra, bands, rows: _call("ARGBToRAW", [bgra, bands[0]], width, rows),
    ):
        return False
    if flip_y:
        cv2.flip(target, 0, dst=target)
    return True


def yuv_to_packed(
    source_type: int,
    sources: list[AnyArray],
    target_type: int,
    target: AnyArray,
    width: int,
    height: int,
    flip_y: bool,
) -> bool:
    """Convert planar YUV to a packed RGB layout with libyuv; False if it has no such function."""
    if not enabled():
        return False
    prefix = _YUV_PREFIX[source_type]
    source_planes = list(sources)
    if source_type == T.I420A and target_type == T.RGB24:
        prefix, source_planes = "I420", sources[:3]
    if source_type == T.I010 and not _has(f"I010To{_LIBYUV_NAME[target_type]}"):
        # no direct 10-bit function for this target: drop to 8 bits first (a 2-bit shift)
        eight_bit = [np.empty(plane.shape, np.uint8) for plane in sources]
        if not _call("I010ToI420", [*sources, *eight_bit], width, height):
            return False
        prefix, source_planes = "I420", eight_bit
    signed_height = -height if flip_y else height
    for produced_type in (target_type, _BYTE_REVERSED.get(target_type)):
        if produced_type is None:
            continue
        name = f"{prefix}To{_LIBYUV_NAME[produced_type]}"
        if not _has(name):
            continue
        ints = [width, signed_height] + ([0] if prefix == "I420Alpha" else [])  # 0: no premultiply
        if not _call(name, [*source_planes, target], *ints):
            return False
        if produced_type != target_type:
            target.reshape(-1).view(np.uint32).byteswap(inplace=True)
        return True
    return False


# rows per band when a conversion goes through a temporary BGRA image: small
# enough for the temporary to stay in cache between the two passes
_BAND_ROWS: Final = 32


def _to_bgra(source_type: int, source: AnyArray, target: AnyArray, width: int, rows: int) -> bool:
    """Rows of a packed source as libyuv's ARGB (livekit BGRA) in ``target``."""
    if source_type == T.RGB24:
        return _call("RAWToARGB", [source, target], width, rows)
    return shuffle_packed(source_type, source, T.BGRA, target, width, rows, False)


def via_bgra_bands(
    source_type: int,
    source: AnyArray,
    targets: list[AnyArray],
    width: int,
    height: int,
    finish: Callable[[AnyArray, list[AnyArray], int], bool],
) -> bool:
    """Convert ``source`` band by band: to BGRA in a cached temporary, then ``finish``.

    ``finish(bgra_band, target_bands, rows)`` converts one band; every target
    plane must have one row per source row (no vertical subsampling).
    """
    band = np.empty((min(_BAND_ROWS, height), width, 4), np.uint8)
    for first in range(0, height, _BAND_ROWS):
        rows = min(_BAND_ROWS, height - first)
        bgra = band[:rows]
        if source_type == T.BGRA:
            bgra = source[first : first + rows]
        elif not _to_bgra(source_type, source[first : first + rows], bgra, width, rows):
            return False
        if not finish(bgra, [plane[first : first + rows] for plane in targets], rows):
            return False
    return True


def packed_to_yuv(
    source_type: int,
    source: AnyArray,
    target_type: int,
    targets: list[AnyArray],
    width: int,
    height: int,
    flip_y: bool,
) -> bool:
    """Convert packed RGB to a planar YUV layout with libyuv; False if not covered."""
    if not enabled():
        return False
    signed_height = -height if flip_y else height
    name = _LIBYUV_NAME[source_type]
    if target_type in (T.I422, T.I444):
        name_to_planar = f"ARGBTo{T.Name(target_type)}"
        if not via_bgra_bands(
            source_type,
            source,
            targets,
            width,
            height,
            lambda bgra, bands, rows: _call(name_to_planar, [bgra, *bands], width, rows),
        ):
            return False
        if flip_y:  # no vertical subsampling: mirroring the result equals reading bottom-up
            for plane in targets:
                cv2.flip(plane, 0, dst=plane)
        return True
    if target_type == T.NV12 and _has(f"{name}ToNV12"):
        return _call(f"{name}ToNV12", [source, *targets], width, signed_height)

    if target_type == T.I010 or target_type == T.NV12:
        chroma_shape = targets[1].shape[:2]
        luma = targets[0] if target_type == T.NV12 else np.empty((height, width), np.uint8)
        planes: list[AnyArray] = [luma, np.empty(chroma_shape, np.uint8), np.empty(chroma_shape, np.uint8)]
    else:
        planes = targets[:3]
    if not _call(f"{name}ToI420", [source, *planes], width, signed_height):
        return False
    if target_type == T.NV12:
        return _call("MergeUVPlane", [planes[1], planes[2], targets[1]], chroma_shape[1], chroma_shape[0])
    if target_type == T.I010:
        for eight_bit, ten_bit in zip(planes, targets):
            widen_to_10bit(eight_bit, ten_bit)
    elif target_type == T.I420A:
        alpha = targets[3]
        if source_type == T.RGB24:
            alpha.fill(255)
        else:
            cv2.mixChannels([source], [alpha], [_ALPHA_INDEX[source_type], 0])
            if flip_y:
                cv2.flip(alpha, 0, dst=alpha)
    return True


# planar -> planar pairs libyuv converts with the same meaning as the OpenCV engine:
# plain copies/interleaves at any size, 2x box reductions only at even sizes
_YUV_TO_YUV_ANY_SIZE: Final[dict[tuple[int, int], str]] = {
    (T.NV12, T.I420): "NV12ToI420",
    (T.I420, T.NV12): "I420ToNV12",
    (T.I010, T.I420): "I010ToI420",
}
_YUV_TO_YUV_EVEN_SIZE: Final[dict[tuple[int, int], str]] = {
    (T.I444, T.I420): "I444ToI420",
    (T.I422, T.I420): "I422ToI420",
}


def yuv_to_yuv(
    source_type: int,
    sources: list[AnyArray],
    target_type: int,
    targets: list[AnyArray],
    width: int,
    height: int,
    flip_y: bool,
) -> bool:
    """Convert between planar layouts with libyuv where its result means the same; else False."""
    if not enabled():
        return False
    pair = (source_type, target_type)
    name = _YUV_TO_YUV_ANY_SIZE.get(pair)
    if name is None and width % 2 == 0 and height % 2 == 0:
        name = _YUV_TO_YUV_EVEN_SIZE.get(pair)
    signed_height = -height if flip_y else height
    if name is not None:
        return _call(name, [*sources, *targets], width, signed_height)
    # two libyuv steps through a temporary I420 beat the general path (e.g. I010 -> NV12)
    into_i420 = _YUV_TO_YUV_ANY_SIZE.get((source_type, T.I420))
    if into_i420 is None and width % 2 == 0 and height % 2 == 0:
        into_i420 = _YUV_TO_YUV_EVEN_SIZE.get((source_type, T.I420))
    out_of_i420 = _YUV_TO_YUV_ANY_SIZE.get((T.I420, target_type))
    if into_i420 is None or out_of_i420 is None:
        return False
    chroma_shape = ((height + 1) // 2, (width + 1) // 2)
    i420: list[AnyArray] = [
        np.empty((height, width), np.uint8),
        np.empty(chroma_shape, np.uint8),
        np.empty(chroma_shape, np.uint8),
    ]
    return _call(into_i420, [*sources, *i420], width, height) and _call(
        out_of_i420, [*i420, *targets], width, signed_height
    )
