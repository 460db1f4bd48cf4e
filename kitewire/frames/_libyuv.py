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
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

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


def _function(name: str, argument_count: int) -> Callable[..., int] | None:
    """The libyuv function ``name`` with all-pointer/int arguments, or None if absent."""
    if name in _functions:
        return _functions[name]
    function: Any = None
    if _library is not None:
        try:
            function = getattr(_library, name)
        except AttributeError:
            function = None
    if function is not None:
        # pointers and ints alternate in every libyuv conversion signature used here;
        # the trailing ints are width and height (and I420Alpha's attenuate flag)
        function.restype = _I
        function.argtypes = _argument_types(name, argument_count)
    _functions[name] = function
    return function


def _argument_types(name: str, count: int) -> list[type[ctypes._SimpleCData[Any]]]:
    types: list[type[ctypes._SimpleCData[Any]]] = []
    pointer_pairs = (count - (3 if name.startswith("I420Alpha") else 2)) // 2
    for _ in range(pointer_pairs):
        types += [_P, _I]
    types += [_I, _I]
    if name.startswith("I420Alpha"):
        types.append(_I)
    return types


def _pointer(array: AnyArray) -> int:
    return int(array.ctypes.data)


def _plane_arguments(plane: AnyArray) -> list[int]:
    """(pointer, stride) of a plane; libyuv counts 16-bit strides in samples."""
    samples_per_row = plane.shape[1] * (plane.shape[2] if plane.ndim == 3 else 1)
    return [_pointer(plane), samples_per_row]


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
    source_planes = sources[:4] if source_type == T.I420A else sources
    if source_type == T.I420A and target_type == T.RGB24:
        prefix, source_planes = "I420", sources[:3]
    signed_height = -height if flip_y else height
    for produced_type in (target_type, _BYTE_REVERSED.get(target_type)):
        if produced_type is None:
            continue
        arguments: list[int] = []
        for plane in source_planes:
            arguments += _plane_arguments(plane)
        arguments += _plane_arguments(target)
        arguments += [width, signed_height]
        name = f"{prefix}To{_LIBYUV_NAME[produced_type]}"
        if prefix == "I420Alpha":
            arguments.append(0)  # attenuate: keep colours unpremultiplied
        function = _function(name, len(arguments))
        if function is None:
            continue
        if function(*arguments) != 0:
            return False
        if produced_type != target_type:
            target.reshape(-1).view(np.uint32).byteswap(inplace=True)
        return True
    return False


def packed_to_yuv(
    source_type: int,
    source: AnyArray,
    target_type: int,
    targets: list[AnyArray],
    width: int,
    height: int,
    flip_y: bool,
) -> bool:
    """Convert packed RGB to I420, I420A, NV12 or I010 with libyuv; False if not covered."""
    if not enabled() or target_type not in (T.I420, T.I420A, T.NV12, T.I010):
        return False
    signed_height = -height if flip_y else height
    name = _LIBYUV_NAME[source_type]
    source_arguments = _plane_arguments(source)
    if target_type == T.NV12:
        function = _function(f"{name}ToNV12", 8)
        if function is None:
            return False
        arguments = source_arguments + _plane_arguments(targets[0]) + _plane_arguments(targets[1])
        return function(*arguments, width, signed_height) == 0

    function = _function(f"{name}ToI420", 10)
    if function is None:
        return False
    if target_type == T.I010:
        chroma_shape = targets[1].shape
        planes: list[AnyArray] = [
            np.empty((height, width), np.uint8),
            np.empty(chroma_shape, np.uint8),
            np.empty(chroma_shape, np.uint8),
        ]
    else:
        planes = targets[:3]
    arguments = list(source_arguments)
    for plane in planes:
        arguments += _plane_arguments(plane)
    if function(*arguments, width, signed_height) != 0:
        return False
    if target_type == T.I010:
        for eight_bit, ten_bit in zip(planes, targets):
            np.left_shift(eight_bit, 2, out=ten_bit, dtype=np.uint16)
    elif target_type == T.I420A:
        alpha = targets[3]
        if source_type == T.RGB24:
            alpha.fill(255)
        else:
            cv2.mixChannels([source], [alpha], [_ALPHA_INDEX[source_type], 0])
            if flip_y:
                cv2.flip(alpha, 0, dst=alpha)
    return True
