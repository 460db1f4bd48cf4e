"""Conversions between every pair of :class:`VideoBufferType` layouts.

Every step runs in libyuv, OpenCV or numpy, all of which release the GIL while
they work, so a conversion can run in a worker thread beside the event loop.
With ``KITEWIRE_BANDS=1`` large libyuv conversions and copies also split into
two horizontal bands on two threads (:mod:`kitewire.frames._bands`); off by
default because on a shared 2-core machine it did not pay off.

Colour follows BT.601 limited range ("studio swing": Y 16..235, chroma
16..240), which is what libyuv and therefore livekit use. Chroma is reduced by
averaging (like libyuv) and expanded by repeating samples (like libyuv's
4:2:0 to RGB paths). Where a side of a frame has an odd length, the last
chroma sample covers a single pixel, so edges are padded by replication.

Engines, chosen per pair by measurement (see ``kitewire bench convert``):

- libyuv through ctypes (:mod:`kitewire.frames._libyuv`) when installed:
  RGB <-> YUV, multi-step byte shuffles and planar pairs whose result means
  the same as below; it is the converter livekit itself uses;
- channel swaps among the packed RGB layouts: 32-bit byte swaps in numpy and
  ``cv2.cvtColor`` channel swaps, which run at memory-copy speed;
- even-sized 4:2:0 to RGB: ``cv2.cvtColor`` (YUV2RGBA_I420, YUV2BGRA_NV12...),
  whose BT.601 limited-range maths matches libyuv;
- everything else colour-related: ``cv2.transform`` with a 3x4 affine colour
  matrix on 3-channel images, ``cv2.resize`` for chroma reduction (box
  average) and expansion (sample repetition).
"""

from __future__ import annotations

from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from . import _bands, _libyuv
from ._samples import repeat_samples, widen_to_10bit
from .enums import VideoBufferType as T
from .layout import FOUR_BYTE_RGB_TYPES, PACKED_RGB_TYPES, plane_layouts

# uint8 by convention: OpenCV's stubs return untyped arrays, so dtypes are not tracked statically
U8Array = npt.NDArray[Any]
AnyArray = npt.NDArray[Any]

# chroma subsampling factors (horizontal, vertical) of each planar layout
_SUBSAMPLING: Final[dict[int, tuple[int, int]]] = {
    T.I420: (2, 2),
    T.I420A: (2, 2),
    T.I010: (2, 2),
    T.NV12: (2, 2),
    T.I422: (2, 1),
    T.I444: (1, 1),
}

# The order in which OpenCV will read or write a packed layout. ABGR and ARGB
# are byte-reversed RGBA and BGRA, so they go through those plus a 32-bit swap.
_CV_ORDER: Final[dict[int, tuple[str, bool]]] = {
    T.RGBA: ("RGBA", False),
    T.BGRA: ("BGRA", False),
    T.RGB24: ("RGB", False),
    T.ABGR: ("RGBA", True),
    T.ARGB: ("BGRA", True),
}

_FROM_I420: Final[dict[str, int]] = {
    "RGBA": cv2.COLOR_YUV2RGBA_I420,
    "BGRA": cv2.COLOR_YUV2BGRA_I420,
    "RGB": cv2.COLOR_YUV2RGB_I420,
}
_FROM_NV12: Final[dict[str, int]] = {
    "RGBA": cv2.COLOR_YUV2RGBA_NV12,
    "BGRA": cv2.COLOR_YUV2BGRA_NV12,
    "RGB": cv2.COLOR_YUV2RGB_NV12,
}

# BT.601 luma weights and limited-range scale factors
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
_Y_SCALE = 219.0 / 255.0
_C_SCALE = 224.0 / 255.0

# rows: Y, U (Cb), V (Cr); columns: R, G, B
_RGB_TO_YUV: Final[npt.NDArray[np.float64]] = np.array(
    [
        [_KR * _Y_SCALE, _KG * _Y_SCALE, _KB * _Y_SCALE],
        [
            -_KR / (2 * (1 - _KB)) * _C_SCALE,
            -_KG / (2 * (1 - _KB)) * _C_SCALE,
            0.5 * _C_SCALE,
        ],
        [
            0.5 * _C_SCALE,
            -_KG / (2 * (1 - _KR)) * _C_SCALE,
            -_KB / (2 * (1 - _KR)) * _C_SCALE,
        ],
    ]
)
_YUV_OFFSETS: Final[npt.NDArray[np.float64]] = np.array([16.0, 128.0, 128.0])
_YUV_TO_RGB: Final[npt.NDArray[np.floating[Any]]] = np.linalg.inv(_RGB_TO_YUV)


def _rgb_to_yuv_matrix(order: str) -> npt.NDArray[np.float32]:
    """3x4 affine matrix for cv2.transform from 3 channels in ``order`` to (Y, U, V)."""
    matrix = np.zeros((3, 4), dtype=np.float32)
    for column, channel in enumerate(order):
        matrix[:, column] = _RGB_TO_YUV[:, "RGB".index(channel)]
    matrix[:, 3] = _YUV_OFFSETS
    return matrix


def _yuv_to_rgb_matrix(order: str) -> npt.NDArray[np.float32]:
    """3x4 affine matrix for cv2.transform from (Y, U, V) to 3 channels in ``order``."""
    matrix = np.zeros((3, 4), dtype=np.float32)
    for row, channel in enumerate(order):
        weights = _YUV_TO_RGB["RGB".index(channel)]
        matrix[row, :3] = weights
        matrix[row, 3] = -float(weights @ _YUV_OFFSETS)
    return matrix


# OpenCV's cv2.transform is only fast for 3 channels in and out (4-channel
# variants take 5-40x longer), so colour maths always runs on 3-channel images.
_TO_YUV_MATRIX: Final[dict[str, npt.NDArray[np.float32]]] = {
    order: _rgb_to_yuv_matrix(order) for order in ("RGB", "BGR")
}
_TO_RGB_MATRIX: Final[dict[str, npt.NDArray[np.float32]]] = {
    order: _yuv_to_rgb_matrix(order) for order in ("RGB", "BGR")
}
_TO_I420: Final[dict[str, int]] = {
    "RGBA": cv2.COLOR_RGBA2YUV_I420,
    "BGRA": cv2.COLOR_BGRA2YUV_I420,
    "RGB": cv2.COLOR_RGB2YUV_I420,
}
_TO_THREE_CHANNELS: Final[dict[str, tuple[int | None, str]]] = {
    "RGBA": (cv2.COLOR_RGBA2RGB, "RGB"),
    "BGRA": (cv2.COLOR_BGRA2BGR, "BGR"),
    "RGB": (None, "RGB"),
}


def plane_arrays(buffer: U8Array, buffer_type: int, width: int, height: int) -> list[AnyArray]:
    """numpy views of each plane of a packed frame buffer (no copy).

    Single-channel planes are 2-D (rows, columns); interleaved ones are 3-D
    (rows, columns, channels). I010 planes are uint16.
    """
    views: list[AnyArray] = []
    for plane in plane_layouts(buffer_type, width, height):
        raw = buffer[plane.offset : plane.end]
        samples: AnyArray = raw.view("<u2") if plane.sample_bytes == 2 else raw
        if plane.channels == 1:
            views.append(samples.reshape(plane.rows, plane.columns))
        else:
            views.append(samples.reshape(plane.rows, plane.columns, plane.channels))
    return views


def convert_buffer(
    source: U8Array,
    source_type: int,
    width: int,
    height: int,
    target_type: int,
    *,
    flip_y: bool = False,
) -> U8Array:
    """Convert a packed frame buffer to ``target_type``; returns a new 1-D uint8 buffer.

    ``source`` must hold at least the layout's bytes; arguments are assumed
    validated by the caller (:class:`~kitewire.frames.VideoFrame` does that).
    """
    target_layout = plane_layouts(target_type, width, height)
    target = np.empty(target_layout[-1].end, dtype=np.uint8)
    src_planes = plane_arrays(source, source_type, width, height)
    dst_planes = plane_arrays(target, target_type, width, height)

    if source_type == target_type:
        _bands.convert_in_bands(_copy_planes(flip_y), src_planes, dst_planes, width, height, flip_y, False)
        return target

    libyuv_step = _libyuv_step(source_type, target_type, width, height, flip_y)
    if libyuv_step is not None:
        step, mirror_targets = libyuv_step
        if _bands.convert_in_bands(step, src_planes, dst_planes, width, height, flip_y, mirror_targets):
            return target

    if flip_y and height % 2 == 1 and source_type in PACKED_RGB_TYPES and target_type not in PACKED_RGB_TYPES:
        # libyuv (so livekit) flips RGB -> YUV by reading the source bottom-up, so
        # for odd heights rows pair up for chroma from the bottom: mirror the source
        # first. Other conversions mirror the result, which is what libyuv does too.
        mirrored = np.empty((height, width, src_planes[0].shape[2]), dtype=np.uint8)
        np.copyto(mirrored, src_planes[0][::-1])
        return convert_buffer(mirrored.reshape(-1), source_type, width, height, target_type)

    if source_type in PACKED_RGB_TYPES and target_type in PACKED_RGB_TYPES:
        _packed_to_packed(source_type, src_planes[0], target_type, dst_planes[0])
    elif source_type in PACKED_RGB_TYPES:
        _packed_to_yuv(source_type, src_planes[0], target_type, target, dst_planes, width, height)
    elif target_type in PACKED_RGB_TYPES:
        _yuv_to_packed(source, source_type, src_planes, target_type, dst_planes[0], width, height)
    else:
        _yuv_to_yuv(source_type, src_planes, target_type, dst_planes, width, height)

    if flip_y:
        for plane in dst_planes:
            _store(cv2.flip(plane, 0, dst=plane), plane)
    return target


def _copy_planes(flip_y: bool) -> _bands.BandConverter:
    """A band converter copying planes as they are (same-type conversion)."""

    def copy(sources: list[AnyArray], targets: list[AnyArray], rows: int) -> bool:
        for src_plane, dst_plane in zip(sources, targets):
            np.copyto(dst_plane, src_plane[::-1] if flip_y else src_plane)
        return True

    return copy


def _libyuv_step(
    source_type: int, target_type: int, width: int, height: int, flip_y: bool
) -> tuple[_bands.BandConverter, bool] | None:
    """The libyuv converter for a pair, and whether it flips by writing the target upside down.

    None when libyuv is off or has nothing better than the OpenCV engine for
    the pair. A converter may still decline (return False) at run time, e.g.
    for sizes its libyuv function does not cover.
    """
    if not _libyuv.enabled():
        return None
    source_packed, target_packed = source_type in PACKED_RGB_TYPES, target_type in PACKED_RGB_TYPES
    if source_packed and not target_packed:
        return (
            lambda sources, targets, rows: _libyuv.packed_to_yuv(
                source_type, sources[0], target_type, targets, width, rows, flip_y
            ),
            False,
        )
    if target_packed and not source_packed:
        # libyuv's YUV -> RGB functions flip by writing the target bottom-up
        return (
            lambda sources, targets, rows: _libyuv.yuv_to_packed(
                source_type, sources, target_type, targets[0], width, rows, flip_y
            ),
            True,
        )
    if not source_packed:
        return (
            lambda sources, targets, rows: _libyuv.yuv_to_yuv(
                source_type, sources, target_type, targets, width, rows, flip_y
            ),
            False,
        )
    if source_type == T.RGB24 and target_type in (T.ABGR, T.ARGB):
        return (
            lambda sources, targets, rows: _libyuv.rgb24_to_reversed(
                target_type, sources[0], targets[0], width, rows, flip_y
            ),
            False,
        )
    if target_type == T.RGB24:
        return (
            lambda sources, targets, rows: _libyuv.reversed_to_rgb24(
                source_type, sources[0], targets[0], width, rows, flip_y
            ),
            False,
        )
    if len(_FOUR_BYTE_STEPS.get((source_type, target_type), "")) > 1:
        # two or three cheap passes in the OpenCV engine, one shuffle in libyuv
        return (
            lambda sources, targets, rows: _libyuv.shuffle_packed(
                source_type, sources[0], target_type, targets[0], width, rows, flip_y
            ),
            False,
        )
    return None


# ---------------------------------------------------------------- helpers


def _store(result: AnyArray, target: AnyArray) -> None:
    """Make sure an OpenCV result landed in ``target``.

    OpenCV writes into ``dst=`` when shape and type fit and otherwise silently
    returns a fresh array; copying in that case keeps results right whatever
    OpenCV decides.
    """
    if result is not target and not np.shares_memory(result, target):
        np.copyto(target, result.reshape(target.shape))


def _swap_bytes_32(source: U8Array, target: U8Array) -> None:
    """Reverse the byte order of every 4-byte pixel (RGBA <-> ABGR, BGRA <-> ARGB)."""
    flat_target = target.reshape(-1)
    if source is target or np.shares_memory(source, target):
        flat_target.view(np.uint32).byteswap(inplace=True)
    else:
        np.copyto(flat_target.view("<u4"), source.reshape(-1).view(">u4"))


def _swap_red_blue(source: U8Array, target: U8Array) -> None:
    """Swap bytes 0 and 2 of every 4-byte pixel (RGBA <-> BGRA)."""
    _store(cv2.cvtColor(source, cv2.COLOR_RGBA2BGRA, dst=target), target)


def _fill_alpha(target: U8Array, alpha: U8Array | None, index: int) -> None:
    """Write ``alpha`` (or 255 where there is none) into channel ``index`` of a 4-channel image."""
    if alpha is None:
        target[:, :, index] = 255
    else:
        cv2.mixChannels([np.ascontiguousarray(alpha)], [target], [0, index])


def _rgb_source(source_type: int, pixels: U8Array) -> tuple[U8Array, str]:
    """Return pixels in an order OpenCV reads (RGBA, BGRA or RGB) and that order's name."""
    order, swapped = _CV_ORDER[source_type]
    if not swapped:
        return pixels, order
    reordered = np.empty_like(pixels)
    _swap_bytes_32(pixels, reordered)
    return reordered, order


# Byte-level operations taking one 4-byte layout to another: S reverses the
# 4 bytes of a pixel, C swaps bytes 0 and 2. The first step reads the source,
# the rest work in place on the target.
_FOUR_BYTE_STEPS: Final[dict[tuple[int, int], str]] = {
    (T.RGBA, T.BGRA): "C",
    (T.BGRA, T.RGBA): "C",
    (T.RGBA, T.ABGR): "S",
    (T.ABGR, T.RGBA): "S",
    (T.BGRA, T.ARGB): "S",
    (T.ARGB, T.BGRA): "S",
    (T.RGBA, T.ARGB): "CS",
    (T.BGRA, T.ABGR): "CS",
    (T.ARGB, T.RGBA): "SC",
    (T.ABGR, T.BGRA): "SC",
    (T.ABGR, T.ARGB): "SCS",
    (T.ARGB, T.ABGR): "SCS",
}


def _packed_to_packed(source_type: int, source: U8Array, target_type: int, target: U8Array) -> None:
    if source_type in FOUR_BYTE_RGB_TYPES and target_type in FOUR_BYTE_RGB_TYPES:
        current = source
        for step in _FOUR_BYTE_STEPS[(source_type, target_type)]:
            if step == "S":
                _swap_bytes_32(current, target)
            else:
                _swap_red_blue(current, target)
            current = target
        return
    if target_type == T.RGB24:
        pixels, order = _rgb_source(source_type, source)
        code = cv2.COLOR_RGBA2RGB if order == "RGBA" else cv2.COLOR_BGRA2RGB
        _store(cv2.cvtColor(pixels, code, dst=target), target)
        return
    # RGB24 to a four-byte layout
    order, swapped = _CV_ORDER[target_type]
    code = cv2.COLOR_RGB2RGBA if order == "RGBA" else cv2.COLOR_RGB2BGRA
    _store(cv2.cvtColor(source, code, dst=target), target)
    if swapped:
        _swap_bytes_32(target, target)


def _pad_to(plane: AnyArray, rows: int, columns: int) -> AnyArray:
    """Extend ``plane`` to rows x columns by repeating its last row/column."""
    extra_rows = rows - plane.shape[0]
    extra_columns = columns - plane.shape[1]
    if extra_rows == 0 and extra_columns == 0:
        return plane
    padded: AnyArray = cv2.copyMakeBorder(
        np.ascontiguousarray(plane), 0, extra_rows, 0, extra_columns, cv2.BORDER_REPLICATE
    )
    if padded.ndim < plane.ndim:  # OpenCV drops a trailing channel axis of 1
        padded = padded.reshape(padded.shape + (1,))
    return padded


def _reduce(plane: AnyArray, factor_x: int, factor_y: int, out: AnyArray | None = None) -> AnyArray:
    """Box-average ``plane`` by integer factors (1 or 2); odd edges average themselves.

    Writes into ``out`` when given and of the reduced shape.
    """
    if factor_x == 1 and factor_y == 1:
        return plane
    rows = -(-plane.shape[0] // factor_y)
    columns = -(-plane.shape[1] // factor_x)
    padded = np.ascontiguousarray(_pad_to(plane, rows * factor_y, columns * factor_x))
    # INTER_AREA has a fast exact path for 2x2; for a factor of 2 along one axis
    # INTER_LINEAR samples exactly between the two pixels, i.e. averages them,
    # and runs 3x faster than INTER_AREA there
    method = cv2.INTER_AREA if factor_x == factor_y else cv2.INTER_LINEAR
    if out is not None and out.shape == (rows, columns) and plane.ndim == 2:
        _store(cv2.resize(padded, (columns, rows), dst=out, interpolation=method), out)
        return out
    reduced: AnyArray = cv2.resize(padded, (columns, rows), interpolation=method)
    if reduced.ndim < plane.ndim:
        reduced = reduced.reshape(reduced.shape + (1,))
    return reduced


def _expand(
    plane: AnyArray, factor_x: int, factor_y: int, rows: int, columns: int, out: AnyArray | None = None
) -> AnyArray:
    """Repeat samples of ``plane`` by integer factors (1 or 2) and crop to rows x columns.

    Writes straight into ``out`` when the enlarged plane fits it exactly.
    """
    if factor_x == 1 and factor_y == 1:
        return plane
    shape = (plane.shape[0] * factor_y, plane.shape[1] * factor_x)
    if out is not None and out.shape == shape and out.flags.c_contiguous:
        repeat_samples(plane, factor_x, factor_y, out)
        return out
    enlarged = np.empty(shape, np.uint8)
    repeat_samples(plane, factor_x, factor_y, enlarged)
    return enlarged[:rows, :columns]


def _resample_chroma(
    plane: AnyArray, source_type: int, target_type: int, width: int, height: int, out: AnyArray | None = None
) -> AnyArray:
    """Bring a chroma plane from the source's subsampling to the target's (maybe into ``out``)."""
    source_x, source_y = _SUBSAMPLING[source_type]
    target_x, target_y = _SUBSAMPLING[target_type]
    if source_x <= target_x and source_y <= target_y:
        return _reduce(plane, target_x // source_x, target_y // source_y, out)
    rows = -(-height // target_y)
    columns = -(-width // target_x)
    return _expand(plane, source_x // target_x, source_y // target_y, rows, columns, out)


def _to_8bit(plane: AnyArray, target: U8Array | None = None) -> U8Array:
    """10-bit samples to 8-bit by dropping the two low bits (out-of-range words saturate)."""
    # |x/4 - 0.375| rounded is floor(x/4) for every integer x >= 0: the shift, done
    # by OpenCV's vectorised convertScaleAbs (numpy needs several passes)
    result: U8Array = cv2.convertScaleAbs(plane, target, alpha=0.25, beta=-0.375)
    if target is not None:
        _store(result, target)
        return target
    return result


def _to_10bit(plane: AnyArray, target: AnyArray) -> None:
    """8-bit samples into 10-bit words by a 2-bit shift."""
    widen_to_10bit(plane, target)


def _yuv_planes(source_type: int, planes: list[AnyArray]) -> tuple[U8Array, U8Array, U8Array, U8Array | None]:
    """8-bit (Y, U, V, alpha-or-None) planes of a planar source, at its own subsampling."""
    if source_type == T.NV12:
        chroma = planes[1]
        u = np.empty(chroma.shape[:2], dtype=np.uint8)
        v = np.empty(chroma.shape[:2], dtype=np.uint8)
        cv2.mixChannels([chroma], [u, v], [0, 0, 1, 1])
        return planes[0], u, v, None
    if source_type == T.I010:
        return _to_8bit(planes[0]), _to_8bit(planes[1]), _to_8bit(planes[2]), None
    alpha = planes[3] if source_type == T.I420A else None
    return planes[0], planes[1], planes[2], alpha


def _write_yuv(
    target_type: int,
    targets: list[AnyArray],
    y: AnyArray,
    u: AnyArray,
    v: AnyArray,
    alpha: AnyArray | None,
) -> None:
    """Store 8-bit planes (already at the target's subsampling) into the target's planes."""
    if target_type == T.I010:
        _to_10bit(y, targets[0])
        _to_10bit(u, targets[1])
        _to_10bit(v, targets[2])
        return
    if y is not targets[0]:
        np.copyto(targets[0], y)
    if target_type == T.NV12:
        interleaved = targets[1]
        cv2.mixChannels([np.ascontiguousarray(u), np.ascontiguousarray(v)], [interleaved], [0, 0, 1, 1])
        return
    if u is not targets[1]:
        np.copyto(targets[1], u)
    if v is not targets[2]:
        np.copyto(targets[2], v)
    if target_type == T.I420A:
        if alpha is None:
            targets[3].fill(255)
        else:
            np.copyto(targets[3], alpha)


def _yuv_to_yuv(
    source_type: int,
    sources: list[AnyArray],
    target_type: int,
    targets: list[AnyArray],
    width: int,
    height: int,
) -> None:
    if source_type == T.NV12 and target_type in (T.I420, T.I420A):
        # deinterleave straight into the target planes
        np.copyto(targets[0], sources[0])
        cv2.mixChannels([sources[1]], [targets[1], targets[2]], [0, 0, 1, 1])
        if target_type == T.I420A:
            targets[3].fill(255)
        return
    y, u, v, alpha = _yuv_planes(source_type, sources)
    planar_8bit = target_type in (T.I420, T.I420A, T.I422, T.I444)
    u = _resample_chroma(u, source_type, target_type, width, height, targets[1] if planar_8bit else None)
    v = _resample_chroma(v, source_type, target_type, width, height, targets[2] if planar_8bit else None)
    _write_yuv(target_type, targets, y, u, v, alpha)


def _yuv_to_packed(
    buffer: U8Array,
    source_type: int,
    sources: list[AnyArray],
    target_type: int,
    target: U8Array,
    width: int,
    height: int,
) -> None:
    order, swapped = _CV_ORDER[target_type]
    has_alpha = target_type in FOUR_BYTE_RGB_TYPES
    even = width % 2 == 0 and height % 2 == 0
    if even and _SUBSAMPLING[source_type] == (2, 2):
        # OpenCV's 4:2:0 converters want Y and chroma as one (height * 3 / 2, width) image,
        # which is exactly our packed layout for even sizes
        luma_chroma_bytes = width * height * 3 // 2
        if source_type == T.I010:
            packed = np.empty(luma_chroma_bytes, dtype=np.uint8)
            for plane, eight_bit in zip(sources, plane_arrays(packed, T.I420, width, height)):
                _to_8bit(plane, eight_bit)
        else:
            packed = buffer[:luma_chroma_bytes]
        table = _FROM_NV12 if source_type == T.NV12 else _FROM_I420
        image = packed.reshape(height * 3 // 2, width)
        _store(cv2.cvtColor(image, table[order], dst=target), target)
    else:
        # general case: chroma to full resolution, one 3-channel colour transform
        y, u, v, _ = _yuv_planes(source_type, sources)
        u = _resample_chroma(u, source_type, T.I444, width, height)
        v = _resample_chroma(v, source_type, T.I444, width, height)
        yuv = cv2.merge([np.ascontiguousarray(y), np.ascontiguousarray(u), np.ascontiguousarray(v)])
        three_channel_order = "BGR" if order.startswith("B") else "RGB"
        if not has_alpha:
            _store(cv2.transform(yuv, _TO_RGB_MATRIX[three_channel_order], dst=target), target)
            return
        rgb = cv2.transform(yuv, _TO_RGB_MATRIX[three_channel_order])
        add_alpha = cv2.COLOR_BGR2BGRA if three_channel_order == "BGR" else cv2.COLOR_RGB2RGBA
        _store(cv2.cvtColor(rgb, add_alpha, dst=target), target)
    if source_type == T.I420A and has_alpha:
        _fill_alpha(target, sources[3], 3)
    if swapped:
        _swap_bytes_32(target, target)


def _three_channels(pixels: U8Array, order: str) -> tuple[U8Array, str]:
    """Drop alpha so colour maths can use OpenCV's fast 3-channel transform."""
    code, three_channel_order = _TO_THREE_CHANNELS[order]
    if code is None:
        return pixels, three_channel_order
    return cv2.cvtColor(pixels, code), three_channel_order


def _split_chroma(yuv: U8Array, target_type: int, targets: list[AnyArray]) -> tuple[U8Array, U8Array] | None:
    """Scatter channels 1 and 2 of a (Y, U, V) image into the target's chroma planes.

    Returns 8-bit (U, V) planes when the target cannot take them directly (I010).
    """
    if target_type == T.NV12:
        cv2.mixChannels([yuv], [targets[1]], [1, 0, 2, 1])
        return None
    if target_type == T.I010:
        u = np.empty(yuv.shape[:2], np.uint8)
        v = np.empty(yuv.shape[:2], np.uint8)
        cv2.mixChannels([yuv], [u, v], [1, 0, 2, 1])
        return u, v
    cv2.mixChannels([yuv], [targets[1], targets[2]], [1, 0, 2, 1])
    return None


def _packed_to_yuv(
    source_type: int,
    source: U8Array,
    target_type: int,
    target: U8Array,
    targets: list[AnyArray],
    width: int,
    height: int,
) -> None:
    pixels, order = _rgb_source(source_type, source)
    factor_x, factor_y = _SUBSAMPLING[target_type]
    chroma: tuple[U8Array, U8Array] | None
    if (factor_x, factor_y) == (2, 2):
        # luma: OpenCV's RGB -> I420 (its chroma takes one pixel of four, so it is replaced)
        even_width, even_height = width + width % 2, height + height % 2
        # for even sizes an I420/I420A target's first three planes are OpenCV's I420 image
        luma_in_place = (even_width, even_height) == (width, height) and target_type in (T.I420, T.I420A)
        if luma_in_place:
            i420 = target[: width * height * 3 // 2]
        else:
            i420 = np.empty(even_width * even_height * 3 // 2, np.uint8)
        padded = _pad_to(pixels, even_height, even_width)
        image = i420.reshape(even_height * 3 // 2, even_width)
        _store(cv2.cvtColor(np.ascontiguousarray(padded), _TO_I420[order], dst=image), image)
        luma = i420[: even_width * even_height].reshape(even_height, even_width)[:height, :width]
        # chroma like libyuv: average each 2x2 block of RGB, then convert
        small, small_order = _three_channels(_reduce(pixels, 2, 2), order)
        chroma = _split_chroma(cv2.transform(small, _TO_YUV_MATRIX[small_order]), target_type, targets)
        if target_type == T.I010:
            _to_10bit(luma, targets[0])
        elif not luma_in_place:
            np.copyto(targets[0], luma)
    else:
        pixels3, three_channel_order = _three_channels(pixels, order)
        yuv = cv2.transform(pixels3, _TO_YUV_MATRIX[three_channel_order])
        cv2.mixChannels([yuv], [targets[0]], [0, 0])
        chroma = _split_chroma(_reduce(yuv, factor_x, factor_y), target_type, targets)
    if chroma is not None:
        _to_10bit(chroma[0], targets[1])
        _to_10bit(chroma[1], targets[2])
    if target_type == T.I420A:
        if len(order) == 4:
            cv2.mixChannels([pixels], [targets[3]], [3, 0])
        else:
            targets[3].fill(255)
