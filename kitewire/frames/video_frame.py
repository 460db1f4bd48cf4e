"""``VideoFrame``: a video image in one of livekit's packed layouts.

Compatible with ``livekit.rtc.VideoFrame`` (same constructor, properties,
``get_plane``, ``convert`` and ``repr``) plus cheap bridges to numpy
(``to_ndarray``/``from_ndarray``/``plane_arrays``) and PyAV
(``to_av``/``from_av``).

Buffer rules: ``data`` may be any C-contiguous buffer (bytes, bytearray,
memoryview, numpy array...). The frame keeps a reference to it and never
copies it. A buffer longer than the layout needs is accepted, like livekit
does; the frame uses its first ``buffer_size(type, width, height)`` bytes and
``frame.data`` is exactly that long. A shorter buffer raises ``ValueError``.
Width and height must be 1..32768.

Where kitewire differs from livekit 1.2.1 on purpose:

- ``convert`` handles all 121 pairs of layouts (livekit: 26, and it aborts
  the process on ABGR sources, I010 -> RGBA/BGRA/I420 and NV12 -> NV12);
- ``get_plane(0)`` of a packed RGB frame is the whole image (livekit: None);
- I422/I444 -> I420 at odd sizes keeps 4:2:0 siting (chroma sample j covers
  pixels 2j and 2j+1, the last one alone), where libyuv's scaler spreads the
  samples evenly; at even sizes both agree;
- ``data`` may be any contiguous buffer, numpy arrays included, never copied
  (livekit copies sliced memoryviews).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, SupportsIndex, cast

import numpy as np
import numpy.typing as npt

from .enums import VideoBufferType
from .layout import (
    FOUR_BYTE_RGB_TYPES,
    buffer_size,
    plane_layouts,
    validate_size,
    validate_type,
)

if TYPE_CHECKING:
    import av

    from .convert import AnyArray

__all__ = ["VideoFrame"]

T = VideoBufferType

# kitewire layout <-> PyAV pixel format with the same memory layout per plane
_AV_FORMATS: Final[dict[int, str]] = {
    T.RGBA: "rgba",
    T.ABGR: "abgr",
    T.ARGB: "argb",
    T.BGRA: "bgra",
    T.RGB24: "rgb24",
    T.I420: "yuv420p",
    T.I420A: "yuva420p",
    T.I422: "yuv422p",
    T.I444: "yuv444p",
    T.I010: "yuv420p10le",
    T.NV12: "nv12",
}
_FROM_AV_FORMATS: Final[dict[str, int]] = {name: kind for kind, name in _AV_FORMATS.items()}


def _byte_view(data: object) -> npt.NDArray[np.uint8]:
    """A flat uint8 numpy view of ``data`` without copying; ValueError if impossible."""
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            raise ValueError(
                "data must be a C-contiguous buffer, got a non-contiguous numpy array "
                f"of shape {data.shape} (use numpy.ascontiguousarray first)"
            )
        if data.dtype.hasobject:
            raise ValueError(f"data must hold raw pixel bytes, got a numpy array of dtype {data.dtype}")
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, str):
        raise ValueError("data must be a bytes-like buffer, got str")
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"data must be a bytes-like buffer (bytes, bytearray, memoryview, numpy array), got {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise ValueError("data must be a C-contiguous buffer, got a non-contiguous memoryview")
    if view.nbytes == 0:
        return np.empty(0, dtype=np.uint8)
    return (
        np.frombuffer(view, dtype=np.uint8)
        if view.ndim == 1 and view.itemsize == 1
        else (np.frombuffer(view.cast("B"), dtype=np.uint8))
    )


class VideoFrame:
    """A video frame: ``width`` x ``height`` pixels in layout ``type`` over a byte buffer.

    Layouts are livekit's, packed with no row padding (see
    :mod:`kitewire.frames.layout`). Raises ``ValueError`` for a width or height
    below 1, an unknown type, or a buffer shorter than the layout needs.
    """

    def __init__(self, width: int, height: int, type: SupportsIndex, data: Any) -> None:
        self._width, self._height = validate_size(width, height)
        self._type = validate_type(type)
        flat = _byte_view(data)
        needed = buffer_size(self._type, self._width, self._height)
        if flat.size < needed:
            raise ValueError(
                f"data too short for a {self._width}x{self._height} "
                f"{VideoBufferType.Name(self._type)} frame: expected at least {needed} bytes, "
                f"got {flat.size}"
            )
        # keeping the caller's object alive keeps the memory the view points at valid
        self._source: object = data
        self._buffer: npt.NDArray[np.uint8] = flat[:needed]

    # ------------------------------------------------------------ livekit API

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self._height

    @property
    def type(self) -> int:
        """Layout of the pixel data, a :class:`VideoBufferType` value."""
        return self._type

    @property
    def data(self) -> memoryview:
        """The frame's bytes (exactly the layout's size); writable when the source buffer is."""
        return self._buffer.data

    def get_plane(self, plane_nth: int) -> memoryview | None:
        """Bytes of plane ``plane_nth`` (Y, U, V[, A] or Y, UV for NV12), None past the last.

        Packed RGB layouts have one plane, the whole image. (livekit returns None
        for every plane of packed RGB layouts; kitewire returns the pixels.)
        """
        planes = plane_layouts(self._type, self._width, self._height)
        if not 0 <= plane_nth < len(planes):
            return None
        plane = planes[plane_nth]
        return self._buffer[plane.offset : plane.end].data

    def convert(self, type: SupportsIndex, *, flip_y: bool = False) -> VideoFrame:
        """Return a new frame in layout ``type``, optionally flipped vertically.

        Every pair of layouts is supported. Colour conversions use BT.601
        limited range like livekit; alpha is kept where both layouts have it
        and set to 255 otherwise. Runs in native code that releases the GIL.
        """
        target_type = validate_type(type)
        # the converters (OpenCV, libyuv) load on the first conversion, not with every frame
        from .convert import convert_buffer

        converted = convert_buffer(
            self._buffer, self._type, self._width, self._height, target_type, flip_y=bool(flip_y)
        )
        return VideoFrame(self._width, self._height, target_type, converted)

    def __repr__(self) -> str:
        return f"rtc.VideoFrame(width={self._width}, height={self._height}, type={VideoBufferType.Name(self._type)})"

    # ------------------------------------------------------------ numpy

    def to_ndarray(self) -> AnyArray:
        """A numpy view of the pixels, sharing memory with the frame (no copy).

        Shapes: (height, width, 4) uint8 for RGBA/ABGR/ARGB/BGRA, (height, width, 3)
        uint8 for RGB24, and for the planar layouts the whole buffer as a 1-D
        array (uint8, or uint16 for I010) in plane order; use
        :meth:`plane_arrays` for 2-D views of each plane.
        """
        if self._type in FOUR_BYTE_RGB_TYPES:
            return self._buffer.reshape(self._height, self._width, 4)
        if self._type == T.RGB24:
            return self._buffer.reshape(self._height, self._width, 3)
        if self._type == T.I010:
            return self._buffer.view("<u2")
        return self._buffer

    def plane_arrays(self) -> list[AnyArray]:
        """numpy views of each plane, sharing memory with the frame.

        2-D (rows, columns) per single-channel plane; NV12's UV plane is
        (rows, columns, 2); packed RGB gives one (height, width, channels) array.
        """
        from .convert import plane_arrays

        return plane_arrays(self._buffer, self._type, self._width, self._height)

    @classmethod
    def from_ndarray(
        cls,
        array: AnyArray,
        type: SupportsIndex,
        *,
        width: int | None = None,
        height: int | None = None,
    ) -> VideoFrame:
        """Wrap a numpy array as a frame without copying it (unless it is not contiguous).

        Packed RGB layouts take (height, width, channels) arrays. Planar layouts
        take a 1-D array (uint8, uint16 for I010) plus ``width`` and ``height``,
        or an OpenCV-style (height * 3 / 2, width) array for I420 and NV12 of
        even height, or a (3, height, width) array for I444.
        """
        buffer_type = validate_type(type)
        if not isinstance(array, np.ndarray):
            raise ValueError(f"array must be a numpy ndarray, got {array.__class__.__name__}")
        expected_dtype = np.uint16 if buffer_type == T.I010 else np.uint8
        if array.dtype != expected_dtype and array.dtype != np.uint8:
            raise ValueError(
                f"a {VideoBufferType.Name(buffer_type)} array must have dtype "
                f"{np.dtype(expected_dtype).name}, got {array.dtype}"
            )
        if width is None or height is None:
            width, height = _infer_size(array, buffer_type)
        contiguous = np.ascontiguousarray(array)
        return cls(width, height, buffer_type, contiguous)

    # ------------------------------------------------------------ PyAV

    def to_av(self, format: str | None = None) -> av.VideoFrame:
        """Copy into a new ``av.VideoFrame`` (PyAV pads its rows).

        ``format`` None keeps this frame's layout (rgba, yuv420p, nv12...). A
        PyAV pixel format with a kitewire twin (e.g. "yuv420p" for an encoder)
        converts with :meth:`convert` first, which is an order of magnitude
        faster than PyAV's own ``reformat`` (swscale) for RGB -> yuv420p.
        """
        import av

        if format is not None and format != _AV_FORMATS[self._type]:
            target_type = _FROM_AV_FORMATS.get(format)
            if target_type is None:
                raise ValueError(f"format must be one of {sorted(_FROM_AV_FORMATS)} or None, got {format!r}")
            return self.convert(target_type).to_av()
        frame = av.VideoFrame(self._width, self._height, _AV_FORMATS[self._type])
        for source, plane in zip(self.plane_arrays(), frame.planes):
            row_bytes = source.shape[1] * source.itemsize * (source.shape[2] if source.ndim == 3 else 1)
            rows = np.frombuffer(cast(Any, plane), dtype=np.uint8).reshape(-1, plane.line_size)
            np.copyto(rows[: source.shape[0], :row_bytes], source.reshape(source.shape[0], -1).view(np.uint8))
        return frame

    @classmethod
    def from_av(
        cls, frame: av.VideoFrame, *, allocate: Callable[[int], npt.NDArray[np.uint8] | None] | None = None
    ) -> VideoFrame:
        """Copy an ``av.VideoFrame`` into a packed kitewire frame (one copy).

        yuv420p becomes I420 (decoder output), and each format with a kitewire
        twin maps to it. Other formats are first reformatted by PyAV: YUV ones
        to yuv420p (I420), the rest to rgba (RGBA). ``allocate(nbytes)``, if given,
        provides the memory the pixels are copied into (a flat uint8 array of
        ``nbytes``), or None for new memory.
        """
        name = frame.format.name
        buffer_type = _FROM_AV_FORMATS.get(name)
        if buffer_type is None:
            target = "yuv420p" if name.startswith(("yuv", "nv", "yuyv", "uyvy")) else "rgba"
            frame = frame.reformat(format=target)
            buffer_type = _FROM_AV_FORMATS[target]
        width, height = validate_size(frame.width, frame.height)
        layouts = plane_layouts(buffer_type, width, height)
        provided = allocate(layouts[-1].end) if allocate is not None else None
        if provided is not None and (provided.dtype != np.uint8 or provided.shape != (layouts[-1].end,)):
            raise ValueError(
                f"expected a flat uint8 array of {layouts[-1].end} bytes to copy into, got {provided.shape}"
            )
        buffer = provided if provided is not None else np.empty(layouts[-1].end, dtype=np.uint8)
        for layout, plane in zip(layouts, frame.planes):
            source = np.frombuffer(cast(Any, plane), dtype=np.uint8)
            target_bytes = buffer[layout.offset : layout.end]
            if plane.line_size == layout.row_bytes:
                np.copyto(target_bytes, source[: layout.nbytes])
            else:
                rows = source[: plane.line_size * layout.rows].reshape(layout.rows, plane.line_size)
                np.copyto(target_bytes.reshape(layout.rows, layout.row_bytes), rows[:, : layout.row_bytes])
        return cls(width, height, buffer_type, buffer)


def _infer_size(array: AnyArray, buffer_type: int) -> tuple[int, int]:
    """(width, height) implied by an array's shape, or ValueError saying what is needed."""
    name = VideoBufferType.Name(buffer_type)
    shape = array.shape
    if buffer_type in FOUR_BYTE_RGB_TYPES or buffer_type == T.RGB24:
        channels = 4 if buffer_type in FOUR_BYTE_RGB_TYPES else 3
        if array.ndim != 3 or shape[2] != channels:
            raise ValueError(f"a {name} array must have shape (height, width, {channels}), got {shape}")
        return int(shape[1]), int(shape[0])
    if buffer_type in (T.I420, T.NV12) and array.ndim == 2:
        if shape[0] % 3 != 0 or shape[0] == 0:
            raise ValueError(
                f"a 2-D {name} array must have shape (height * 3 / 2, width) with an even height, got {shape}"
            )
        return int(shape[1]), int(shape[0] * 2 // 3)
    if buffer_type == T.I444 and array.ndim == 3:
        if shape[0] != 3:
            raise ValueError(f"a 3-D I444 array must have shape (3, height, width), got {shape}")
        return int(shape[2]), int(shape[1])
    raise ValueError(f"cannot infer the size of a {name} frame from an array of shape {shape}: pass width= and height=")
