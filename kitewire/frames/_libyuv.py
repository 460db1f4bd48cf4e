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

Where libyuv only has a function for another byte order, or a second pass
follows (alpha extraction, chroma interleave), large frames are converted 64
rows at a time through a small temporary, so the second pass reads from
cache; every such band pipeline gives the bytes of the whole-frame calls.
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


_SHUFFLE_MASKS: dict[tuple[int, int], Any] = {}


def _shuffle_mask(source_type: int, target_type: int) -> Any:
    """libyuv ARGBShuffle's 16-byte mask taking ``source_type`` pixels to ``target_type`` (cached)."""
    mask = _SHUFFLE_MASKS.get((source_type, target_type))
    if mask is None:
        source_order, target_order = T.Name(source_type), T.Name(target_type)
        per_pixel = [source_order.index(channel) for channel in target_order]
        mask = (ctypes.c_uint8 * 16)(*[pixel * 4 + index for pixel in range(4) for index in per_pixel])
        _SHUFFLE_MASKS[(source_type, target_type)] = mask
    return mask


def shuffle_packed(
    source_type: int, source: AnyArray, target_type: int, target: AnyArray, width: int, height: int, flip_y: bool
) -> bool:
    """Reorder the bytes of four-byte pixels in one pass (libyuv ARGBShuffle)."""
    if not enabled() or source_type not in _ALPHA_INDEX or target_type not in _ALPHA_INDEX:
        return False
    function = _function("ARGBShuffle", [_P, _I, _P, _I, _P, _I, _I])
    if function is None:
        return False
    mask = _shuffle_mask(source_type, target_type)
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
    return via_bgra_bands(source_type, source, [target], width, height, "ARGBToRAW", flip_y)


def rgb24_to_reversed(
    target_type: int, source: AnyArray, target: AnyArray, width: int, height: int, flip_y: bool
) -> bool:
    """RGB24 -> ABGR (libyuv RAWToRGBA, one pass) or ARGB (RAWToARGB into cached bands, then a shuffle)."""
    if not enabled() or target_type not in (T.ABGR, T.ARGB):
        return False
    if target_type == T.ABGR:
        return _has("RAWToRGBA") and _call("RAWToRGBA", [source, target], width, -height if flip_y else height)
    to_bgra = _to_bgra_function(T.RGB24)
    shuffle = _function("ARGBShuffle", [_P, _I, _P, _I, _P, _I, _I])
    if to_bgra is None or shuffle is None:
        return False
    mask = ctypes.addressof(_shuffle_mask(T.BGRA, T.ARGB))
    temporary = np.empty((min(_BAND_ROWS, height), width, 4), np.uint8)
    temporary_pointer, row_bytes = _pointer(temporary), width * 4
    target_row = _row_pointer(target, height)
    source_stride = source.strides[0]

    def band_step(band: int, first: int, signed_rows: int) -> int:
        status = to_bgra(band, source_stride, temporary_pointer, row_bytes, width, signed_rows)
        return status or shuffle(
            temporary_pointer, row_bytes, target_row(first), row_bytes, mask, width, abs(signed_rows)
        )

    return _source_bands(source, height, flip_y, band_step)


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
        premultiply = [0] if prefix == "I420Alpha" else []  # 0: keep alpha straight
        if produced_type != target_type and width * height >= _REVERSAL_BANDS_FROM_PIXELS:
            return _reversed_in_bands(
                name, source_planes, produced_type, target_type, target, width, height, flip_y, premultiply
            )
        if not _call(name, [*source_planes, target], width, signed_height, *premultiply):
            return False
        if produced_type != target_type:
            target.reshape(-1).view(np.uint32).byteswap(inplace=True)
        return True
    return False


def _reversed_in_bands(
    name: str,
    sources: list[AnyArray],
    produced_type: int,
    target_type: int,
    target: AnyArray,
    width: int,
    height: int,
    flip_y: bool,
    extra_ints: list[int],
) -> bool:
    """Run YUV -> packed ``name`` band by band into a cached temporary, then shuffle into ``target``.

    For targets libyuv only produces in the opposite byte order (e.g. NV12 ->
    livekit ARGB through libyuv's NV12ToARGB, i.e. livekit BGRA): the byte
    reversal reads the band from cache, and ARGBShuffle does it several times
    faster than numpy's byteswap. With ``flip_y`` each band is written upside
    down, then shuffled into the mirrored rows.
    """
    function = _planes_function(name, len(sources) + 1, 2 + len(extra_ints))
    shuffle = _function("ARGBShuffle", [_P, _I, _P, _I, _P, _I, _I])
    if function is None or shuffle is None:
        return False
    mask = ctypes.addressof(_shuffle_mask(produced_type, target_type))
    source_rows = [_row_pointer(plane, height) for plane in sources]
    source_strides = [_plane_arguments(plane)[1] for plane in sources]
    temporary = np.empty((min(_BAND_ROWS, height), width, 4), np.uint8)
    temporary_pointer, row_bytes = _pointer(temporary), width * 4
    target_pointer = _pointer(target)
    for first in range(0, height, _BAND_ROWS):
        rows = min(_BAND_ROWS, height - first)
        target_first = height - first - rows if flip_y else first
        arguments: list[int] = []
        for row_pointer, stride in zip(source_rows, source_strides):
            arguments += (row_pointer(first), stride)
        if function(*arguments, temporary_pointer, row_bytes, width, -rows if flip_y else rows, *extra_ints):
            return False
        target_band = target_pointer + target_first * row_bytes
        if shuffle(temporary_pointer, row_bytes, target_band, row_bytes, mask, width, rows):
            return False
    return True


# Rows per band when a packed source is converted band by band, so that a
# second pass (after a byte shuffle into a temporary, alpha extraction, chroma
# interleave) reads what the first one just touched from cache. Large enough
# that the per-band Python overhead (a few microseconds) stays small; 48-96
# measured best at 1080p. Even, so 4:2:0 chroma rows never straddle two bands.
_BAND_ROWS: Final = 64
# frames from this many pixels convert band by band where a second pass follows
_BANDS_FROM_PIXELS: Final = 1280 * 720
# YUV -> byte-reversed RGB gains from bands already at 640x360 (numpy's whole-frame
# byteswap is slow); at 320x240 both ways measured the same
_REVERSAL_BANDS_FROM_PIXELS: Final = 640 * 360


def _row_pointer(plane: AnyArray, height: int) -> Callable[[int], int]:
    """Address of the plane row holding luma row ``first`` (an even row for subsampled planes)."""
    base, row_bytes = _pointer(plane), plane.strides[0]
    per_plane_row = 1 if plane.shape[0] == height else 2
    return lambda first: base + first // per_plane_row * row_bytes


def _source_bands(source: AnyArray, height: int, flip_y: bool, step: Callable[[int, int, int], int]) -> bool:
    """Call ``step(source_band_address, first_target_row, signed_rows)`` band by band.

    With ``flip_y`` the band for target rows [first, first + rows) is read from
    the bottom of the source and ``signed_rows`` is negative, which makes
    libyuv read it bottom-up: the whole frame is flipped exactly as one call
    with a negative height would. ``step`` returns libyuv's status (0 = done).
    """
    base, stride = _pointer(source), source.strides[0]
    for first in range(0, height, _BAND_ROWS):
        rows = min(_BAND_ROWS, height - first)
        source_first = height - first - rows if flip_y else first
        if step(base + source_first * stride, first, -rows if flip_y else rows):
            return False
    return True


def _to_bgra_function(source_type: int) -> Callable[[int, int, int, int, int, int], int] | None:
    """A libyuv call turning rows of a packed layout into libyuv ARGB (livekit BGRA).

    Arguments: (source address, source stride, target address, target stride, width, signed rows).
    """
    if source_type == T.RGB24:
        return _function("RAWToARGB", [_P, _I, _P, _I, _I, _I])
    shuffle = _function("ARGBShuffle", [_P, _I, _P, _I, _P, _I, _I])
    if shuffle is None:
        return None
    mask = ctypes.addressof(_shuffle_mask(source_type, T.BGRA))
    return lambda source, source_stride, target, target_stride, width, rows: shuffle(
        source, source_stride, target, target_stride, mask, width, rows
    )


def via_bgra_bands(
    source_type: int,
    source: AnyArray,
    targets: list[AnyArray],
    width: int,
    height: int,
    finish_name: str,
    flip_y: bool,
    alpha: AnyArray | None = None,
) -> bool:
    """Convert packed ``source`` with libyuv's ``finish_name`` (an ARGBTo... function).

    libyuv's ARGB is livekit's BGRA; other layouts are first turned into BGRA
    band by band in a small temporary that stays in cache for the second
    pass. Target planes are uint8, with one row per source row or one per
    pair of rows. ``alpha`` (I420A) is filled from the same cached band.
    """
    finish = _planes_function(finish_name, 1 + len(targets))
    extract_alpha = _planes_function("ARGBExtractAlpha", 2) if alpha is not None else None
    if finish is None or (alpha is not None and extract_alpha is None):
        return False
    target_rows = [_row_pointer(plane, height) for plane in targets]
    strides = [_plane_arguments(plane)[1] for plane in targets]
    alpha_row = _row_pointer(alpha, height) if alpha is not None else None

    def finish_band(bgra: int, bgra_stride: int, first: int, rows: int) -> int:
        arguments: list[int] = []
        for row_pointer, stride in zip(target_rows, strides):
            arguments += (row_pointer(first), stride)
        status = finish(bgra, bgra_stride, *arguments, width, rows)
        if status == 0 and extract_alpha is not None and alpha_row is not None:
            status = extract_alpha(bgra, bgra_stride, alpha_row(first), width, width, rows)
        return status

    if source_type == T.BGRA:  # already libyuv ARGB: no temporary needed
        return _source_bands(
            source, height, flip_y, lambda band, first, rows: finish_band(band, width * 4, first, rows)
        )
    to_bgra = _to_bgra_function(source_type)
    if to_bgra is None:
        return False
    temporary = np.empty((min(_BAND_ROWS, height), width, 4), np.uint8)
    temporary_pointer, temporary_stride = _pointer(temporary), width * 4
    source_stride = source.strides[0]

    def band_step(band: int, first: int, signed_rows: int) -> int:
        status = to_bgra(band, source_stride, temporary_pointer, temporary_stride, width, signed_rows)
        return status or finish_band(temporary_pointer, temporary_stride, first, abs(signed_rows))

    return _source_bands(source, height, flip_y, band_step)


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
        return via_bgra_bands(source_type, source, targets, width, height, f"ARGBTo{T.Name(target_type)}", flip_y)
    # below about 720p the whole frame stays in cache between passes anyway,
    # and whole-frame calls skip the per-band overhead (measured crossover)
    large = width * height >= _BANDS_FROM_PIXELS
    if target_type == T.NV12 and _has(f"{name}ToNV12"):
        return _call(f"{name}ToNV12", [source, *targets], width, signed_height)
    if target_type == T.NV12 and large:
        return _nv12_through_i420_bands(name, source, targets, width, height, flip_y)
    if target_type == T.I420A and source_type != T.RGB24 and large:
        if source_type in _BYTE_REVERSED:
            # alpha is the first byte: ARGBToI420 and ARGBExtractAlpha on cached BGRA bands
            return via_bgra_bands(source_type, source, targets[:3], width, height, "ARGBToI420", flip_y, targets[3])
        # alpha is the fourth byte: both passes on the same source band, the second from cache
        to_i420 = _planes_function(f"{name}ToI420", 4)
        extract_alpha = _planes_function("ARGBExtractAlpha", 2)
        if to_i420 is None or extract_alpha is None:
            return False
        row_pointers = [_row_pointer(plane, height) for plane in targets]
        strides = [_plane_arguments(plane)[1] for plane in targets]

        def band_step(band: int, first: int, rows: int) -> int:
            y, u, v, alpha = (row_pointer(first) for row_pointer in row_pointers)
            status = to_i420(band, width * 4, y, strides[0], u, strides[1], v, strides[2], width, rows)
            return status or extract_alpha(band, width * 4, alpha, strides[3], width, rows)

        return _source_bands(source, height, flip_y, band_step)

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
        elif _ALPHA_INDEX[source_type] == 3 and _has("ARGBExtractAlpha"):
            # the fourth byte of each pixel, read bottom-up when flipping, in one pass
            return _call("ARGBExtractAlpha", [source, alpha], width, signed_height)
        else:
            cv2.mixChannels([source], [alpha], [_ALPHA_INDEX[source_type], 0])
            if flip_y:
                cv2.flip(alpha, 0, dst=alpha)
    return True


def _nv12_through_i420_bands(
    name: str, source: AnyArray, targets: list[AnyArray], width: int, height: int, flip_y: bool
) -> bool:
    """Packed RGB -> NV12 for layouts libyuv has no XToNV12 for.

    Band by band: ``{name}ToI420`` writes luma straight into the target and
    chroma into two small cached planes, which MergeUVPlane then interleaves.
    Measured faster than shuffling to BGRA for ARGBToNV12 (the shuffle costs
    as much as a copy) and than whole-frame I420 planes merged afterwards.
    """
    to_i420 = _planes_function(f"{name}ToI420", 4)
    merge = _planes_function("MergeUVPlane", 3)
    if to_i420 is None or merge is None:
        return False
    chroma_width = (width + 1) // 2
    band_u = np.empty(((_BAND_ROWS + 1) // 2, chroma_width), np.uint8)
    band_v = np.empty_like(band_u)
    u_pointer, v_pointer = _pointer(band_u), _pointer(band_v)
    source_stride = source.strides[0]
    luma, chroma = targets
    luma_row, chroma_row = _row_pointer(luma, height), _row_pointer(chroma, height)
    chroma_stride = chroma_width * 2

    def band_step(band: int, first: int, rows: int) -> int:
        status = to_i420(
            band, source_stride, luma_row(first), width, u_pointer, chroma_width, v_pointer, chroma_width, width, rows
        )
        chroma_rows = (abs(rows) + 1) // 2
        return status or merge(
            u_pointer,
            chroma_width,
            v_pointer,
            chroma_width,
            chroma_row(first),
            chroma_stride,
            chroma_width,
            chroma_rows,
        )

    return _source_bands(source, height, flip_y, band_step)


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
    (T.I444, T.NV12): "I444ToNV12",
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
    if target_type == T.I420A and source_type != T.I420A:
        # the I420 planes, then an opaque alpha plane (the source has no alpha)
        if not yuv_to_yuv(source_type, sources, T.I420, targets[:3], width, height, flip_y):
            return False
        targets[3].fill(255)
        return True
    if target_type == T.I010 and source_type == T.I422:
        # 8-bit I420 first (even sizes), then a 2-bit shift into the words; for other
        # sources the OpenCV engine's direct path measured faster
        chroma_shape = targets[1].shape
        i420: list[AnyArray] = [np.empty(targets[0].shape, np.uint8)] + [np.empty(chroma_shape, np.uint8) for _ in "uv"]
        if not yuv_to_yuv(source_type, sources, T.I420, i420, width, height, flip_y):
            return False
        for eight_bit, ten_bit in zip(i420, targets):
            widen_to_10bit(eight_bit, ten_bit)
        return True
    if source_type == T.I420A and target_type != T.I420A:  # alpha has nowhere to go
        return yuv_to_yuv(T.I420, sources[:3], target_type, targets, width, height, flip_y)
    pair = (source_type, target_type)
    if pair == (T.I444, T.I422):
        return _i444_to_i422(sources, targets, width, height, flip_y)
    name = _YUV_TO_YUV_ANY_SIZE.get(pair)
    if name is None and width % 2 == 0 and height % 2 == 0:
        name = _YUV_TO_YUV_EVEN_SIZE.get(pair)
    signed_height = -height if flip_y else height
    if name is not None:
        return _call(name, [*sources, *targets], width, signed_height)
    # to NV12 in two libyuv steps (e.g. I010 -> NV12): the X -> I420 step writes luma
    # straight into the target (flipping if asked), MergeUVPlane interleaves the chroma
    into_i420 = _YUV_TO_YUV_ANY_SIZE.get((source_type, T.I420))
    if into_i420 is None and width % 2 == 0 and height % 2 == 0:
        into_i420 = _YUV_TO_YUV_EVEN_SIZE.get((source_type, T.I420))
    if into_i420 is None or target_type != T.NV12:
        return False
    chroma_shape = ((height + 1) // 2, (width + 1) // 2)
    chroma: list[AnyArray] = [np.empty(chroma_shape, np.uint8), np.empty(chroma_shape, np.uint8)]
    return _call(into_i420, [*sources, targets[0], *chroma], width, signed_height) and _call(
        "MergeUVPlane", [*chroma, targets[1]], chroma_shape[1], chroma_shape[0]
    )


def halve_columns(source: AnyArray, target: AnyArray, flip_y: bool) -> bool:
    """Average each horizontal pair of samples of an even-width uint8 plane into ``target``.

    Rounds halves up, like OpenCV's 2:1 linear resize and libyuv's own 4:2:2
    chroma. libyuv has no horizontal-only reduction, but its exact 2:1
    ScalePlane path with linear filtering averages pairs of one row and then
    skips a row; describing the plane as twice as many rows with half the
    stride makes the skipped rows the imaginary ones, so every real row is
    reduced in one pass (about 0.1 ms for a 1080p plane, 3-10x OpenCV).
    """
    rows, columns = source.shape
    if columns % 2 or target.shape != (rows, columns // 2):
        return False
    function = _function("ScalePlane", [_P, _I, _I, _I, _P, _I, _I, _I, _I])
    if function is None:
        return False
    half_stride = columns // 2
    start = _pointer(source)
    if flip_y:  # start at the last row and walk upwards
        start += (rows - 1) * columns
        half_stride = -half_stride
    linear_filter = 1  # libyuv kFilterLinear: horizontal interpolation only
    result = function(
        start, half_stride, columns, rows * 2, _pointer(target), columns // 2, columns // 2, rows, linear_filter
    )
    return result == 0


def _i444_to_i422(sources: list[AnyArray], targets: list[AnyArray], width: int, height: int, flip_y: bool) -> bool:
    """I444 -> I422: copy luma, halve chroma columns (even widths only; else False)."""
    if width % 2:
        return False
    if not (halve_columns(sources[1], targets[1], flip_y) and halve_columns(sources[2], targets[2], flip_y)):
        return False
    np.copyto(targets[0], sources[0][::-1] if flip_y else sources[0])
    return True
