"""Packed buffer layouts of every :class:`VideoBufferType`, as livekit lays them out.

No row padding anywhere. Planes follow each other in the order livekit uses
(Y, U, V, then A for I420A; Y then interleaved UV for NV12). Chroma of the
4:2:0 and 4:2:2 formats is ``(width + 1) // 2`` wide, so odd sizes round up.
I010 stores each sample as a little-endian 16-bit word holding 10 bits.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import lru_cache

from .enums import VideoBufferType

#: the four-byte packed RGB layouts, in livekit's byte order naming
FOUR_BYTE_RGB_TYPES: frozenset[int] = frozenset(
    {VideoBufferType.RGBA, VideoBufferType.ABGR, VideoBufferType.ARGB, VideoBufferType.BGRA}
)
#: every packed (interleaved) RGB layout
PACKED_RGB_TYPES: frozenset[int] = FOUR_BYTE_RGB_TYPES | {VideoBufferType.RGB24}
#: every planar YUV layout
YUV_TYPES: frozenset[int] = frozenset(
    {
        VideoBufferType.I420,
        VideoBufferType.I420A,
        VideoBufferType.I422,
        VideoBufferType.I444,
        VideoBufferType.I010,
        VideoBufferType.NV12,
    }
)
#: layouts carrying an alpha channel
ALPHA_TYPES: frozenset[int] = FOUR_BYTE_RGB_TYPES | {VideoBufferType.I420A}


#: largest accepted width or height; keeps every row stride and plane offset the
#: native converters see (C ints) far from overflow
MAX_DIMENSION = 32768


@dataclass(frozen=True)
class PlaneLayout:
    """Where one plane sits in a packed frame buffer.

    ``rows`` x ``columns`` samples of ``channels`` interleaved components,
    each ``sample_bytes`` wide, starting ``offset`` bytes into the buffer.
    """

    offset: int
    rows: int
    columns: int
    channels: int
    sample_bytes: int

    @property
    def row_bytes(self) -> int:
        """Bytes in one row of this plane (its stride: there is no padding)."""
        return self.columns * self.channels * self.sample_bytes

    @property
    def nbytes(self) -> int:
        """Bytes the whole plane occupies."""
        return self.rows * self.row_bytes

    @property
    def end(self) -> int:
        """Offset just past the plane."""
        return self.offset + self.nbytes


def validate_type(buffer_type: object) -> int:
    """Return ``buffer_type`` as a known VideoBufferType number or raise ValueError."""
    if isinstance(buffer_type, bool):
        raise ValueError(f"type must be a VideoBufferType value, got bool {buffer_type!r}")
    try:
        number = operator.index(buffer_type)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"type must be a VideoBufferType value (int 0..10, e.g. VideoBufferType.RGBA), "
            f"got {type(buffer_type).__name__} {buffer_type!r}"
        ) from None
    if number not in VideoBufferType.values():
        raise ValueError(f"type must be one of {VideoBufferType.items()}, got unknown value {number}")
    return number


def validate_size(width: object, height: object) -> tuple[int, int]:
    """Return (width, height) as positive ints or raise ValueError naming the bad one."""
    sizes: list[int] = []
    for label, value in (("width", width), ("height", height)):
        if isinstance(value, bool):
            raise ValueError(f"{label} must be an int of at least 1, got bool {value!r}")
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(f"{label} must be an int of at least 1, got {type(value).__name__} {value!r}") from None
        if number < 1:
            raise ValueError(f"{label} must be at least 1, got {number}")
        if number > MAX_DIMENSION:
            raise ValueError(f"{label} must be at most {MAX_DIMENSION}, got {number}")
        sizes.append(number)
    return sizes[0], sizes[1]


@lru_cache(maxsize=256)
def plane_layouts(buffer_type: int, width: int, height: int) -> tuple[PlaneLayout, ...]:
    """The planes of a ``width`` x ``height`` frame of ``buffer_type``, in buffer order.

    Packed RGB layouts have a single interleaved plane. Arguments are assumed
    validated (see :func:`validate_type` and :func:`validate_size`).
    """
    chroma_width = (width + 1) // 2
    chroma_height = (height + 1) // 2
    specs: list[tuple[int, int, int, int]]  # rows, columns, channels, sample bytes
    if buffer_type in FOUR_BYTE_RGB_TYPES:
        specs = [(height, width, 4, 1)]
    elif buffer_type == VideoBufferType.RGB24:
        specs = [(height, width, 3, 1)]
    elif buffer_type == VideoBufferType.I420:
        specs = [(height, width, 1, 1)] + [(chroma_height, chroma_width, 1, 1)] * 2
    elif buffer_type == VideoBufferType.I420A:
        specs = [(height, width, 1, 1)] + [(chroma_height, chroma_width, 1, 1)] * 2 + [(height, width, 1, 1)]
    elif buffer_type == VideoBufferType.I422:
        specs = [(height, width, 1, 1)] + [(height, chroma_width, 1, 1)] * 2
    elif buffer_type == VideoBufferType.I444:
        specs = [(height, width, 1, 1)] * 3
    elif buffer_type == VideoBufferType.I010:
        specs = [(height, width, 1, 2)] + [(chroma_height, chroma_width, 1, 2)] * 2
    elif buffer_type == VideoBufferType.NV12:
        specs = [(height, width, 1, 1), (chroma_height, chroma_width, 2, 1)]
    else:
        raise ValueError(f"type must be a VideoBufferType value, got {buffer_type!r}")
    planes: list[PlaneLayout] = []
    offset = 0
    for rows, columns, channels, sample_bytes in specs:
        plane = PlaneLayout(offset, rows, columns, channels, sample_bytes)
        planes.append(plane)
        offset = plane.end
    return tuple(planes)


def buffer_size(buffer_type: int, width: int, height: int) -> int:
    """Bytes a packed ``width`` x ``height`` frame of ``buffer_type`` needs."""
    return plane_layouts(buffer_type, width, height)[-1].end
