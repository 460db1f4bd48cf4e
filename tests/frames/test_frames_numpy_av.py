"""numpy views and PyAV bridges."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
import pytest
from frames_helpers import ALL_TYPES, random_frame, smooth_rgba
from kitewire.frames import VideoBufferType as T
from kitewire.frames import VideoFrame, buffer_size


@pytest.mark.parametrize(
    "buffer_type,shape,dtype",
    [
        (T.RGBA, (5, 3, 4), np.uint8),
        (T.ABGR, (5, 3, 4), np.uint8),
        (T.ARGB, (5, 3, 4), np.uint8),
        (T.BGRA, (5, 3, 4), np.uint8),
        (T.RGB24, (5, 3, 3), np.uint8),
        (T.I420, (buffer_size(T.I420, 3, 5),), np.uint8),
        (T.I420A, (buffer_size(T.I420A, 3, 5),), np.uint8),
        (T.I422, (buffer_size(T.I422, 3, 5),), np.uint8),
        (T.I444, (buffer_size(T.I444, 3, 5),), np.uint8),
        (T.NV12, (buffer_size(T.NV12, 3, 5),), np.uint8),
        (T.I010, (buffer_size(T.I010, 3, 5) // 2,), np.uint16),
    ],
    ids=lambda v: T.Name(v) if isinstance(v, int) else None,
)
def test_to_ndarray_is_a_documented_view_sharing_memory(buffer_type: int, shape: tuple[int, ...], dtype: type) -> None:
    source = np.zeros(buffer_size(buffer_type, 3, 5), np.uint8)
    frame = VideoFrame(3, 5, buffer_type, source)
    array = frame.to_ndarray()
    assert array.shape == shape and array.dtype == dtype
    assert np.shares_memory(array, source)
    array.reshape(-1).view(np.uint8)[-1] = 77  # a write through the view is a write to the frame
    assert frame.data[-1] == 77
    for plane in frame.plane_arrays():
        assert np.shares_memory(plane, source)


def test_plane_arrays_shapes() -> None:
    y, uv = VideoFrame(5, 3, T.NV12, bytearray(buffer_size(T.NV12, 5, 3))).plane_arrays()
    assert y.shape == (3, 5) and uv.shape == (2, 3, 2)
    y, u, v = VideoFrame(5, 3, T.I422, bytearray(buffer_size(T.I422, 5, 3))).plane_arrays()
    assert u.shape == (3, 3) and v.shape == (3, 3)
    y, u, v = VideoFrame(5, 3, T.I010, bytearray(buffer_size(T.I010, 5, 3))).plane_arrays()
    assert y.dtype == np.uint16 and u.shape == (2, 3)


def test_from_ndarray_infers_sizes_and_keeps_the_array() -> None:
    rgb = np.zeros((7, 9, 3), np.uint8)
    frame = VideoFrame.from_ndarray(rgb, T.RGB24)
    assert (frame.width, frame.height) == (9, 7) and np.shares_memory(frame.to_ndarray(), rgb)
    i420 = np.zeros((6, 8), np.uint8)  # OpenCV's (height * 3 / 2, width) layout
    frame = VideoFrame.from_ndarray(i420, T.I420)
    assert (frame.width, frame.height) == (8, 4) and np.shares_memory(frame.to_ndarray(), i420)
    i444 = np.zeros((3, 4, 5), np.uint8)
    assert VideoFrame.from_ndarray(i444, T.I444).width == 5
    flat = np.zeros(buffer_size(T.I010, 3, 3) // 2, np.uint16)
    frame = VideoFrame.from_ndarray(flat, T.I010, width=3, height=3)
    assert np.shares_memory(frame.to_ndarray(), flat)
    # a non-contiguous array is copied, and the frame reads it right
    wide = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    half = wide[:, ::2]
    frame = VideoFrame.from_ndarray(half, T.RGBA)
    np.testing.assert_array_equal(frame.to_ndarray(), half)


@pytest.mark.parametrize(
    "array,buffer_type,kwargs,message",
    [
        (np.zeros((4, 4, 3), np.uint8), T.RGBA, {}, r"shape \(height, width, 4\), got \(4, 4, 3\)"),
        (np.zeros((4, 4), np.uint8), T.RGB24, {}, r"shape \(height, width, 3\)"),
        (np.zeros(24, np.uint8), T.I420, {}, "pass width= and height="),
        (np.zeros((5, 4), np.uint8), T.I420, {}, "even height"),
        (np.zeros((4, 4, 4), np.float32), T.RGBA, {}, "dtype uint8, got float32"),
        (np.zeros(10, np.uint8), T.I420, {"width": 4, "height": 4}, "expected at least 24 bytes, got 10"),
        ([1, 2, 3], T.RGBA, {}, "numpy ndarray, got list"),
        (np.zeros((4, 4, 4), np.uint8), 99, {}, "unknown value 99"),
    ],
)
def test_from_ndarray_bad_input(array: object, buffer_type: int, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoFrame.from_ndarray(array, buffer_type, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("buffer_type", ALL_TYPES, ids=T.keys())
@pytest.mark.parametrize("width,height", [(1, 1), (3, 5), (641, 479)])
def test_to_av_and_back_is_lossless(buffer_type: int, width: int, height: int) -> None:
    frame = random_frame(buffer_type, width, height, seed=buffer_type)
    av_frame = frame.to_av()
    assert (av_frame.width, av_frame.height) == (width, height)
    back = VideoFrame.from_av(av_frame)
    assert back.type == buffer_type
    assert bytes(back.data) == bytes(frame.data)


def test_to_av_matches_pyav_pixels() -> None:
    rgba = smooth_rgba(161, 121)
    av_frame = VideoFrame.from_ndarray(rgba, T.RGBA).to_av()
    assert av_frame.format.name == "rgba"
    np.testing.assert_array_equal(av_frame.to_ndarray(), rgba)
    yuv = VideoFrame.from_ndarray(rgba, T.RGBA).convert(T.I420).to_av()
    assert yuv.format.name == "yuv420p"
    # PyAV's own (swscale) conversion back to RGB lands near the original colours
    rgb = yuv.to_ndarray(format="rgb24")
    assert np.abs(rgb.astype(int) - rgba[..., :3]).mean() < 6


def test_from_av_of_padded_decoder_style_frame_is_one_packed_i420() -> None:
    rgb = smooth_rgba(641, 479)[..., :3].copy()
    decoded = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    assert decoded.planes[0].line_size > 641  # PyAV pads rows; from_av must drop the padding
    frame = VideoFrame.from_av(decoded)
    assert frame.type == T.I420 and (frame.width, frame.height) == (641, 479)
    y, u, v = frame.plane_arrays()
    for ours, plane, columns in zip((y, u, v), decoded.planes, (641, 321, 321)):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[: ours.shape[0], :columns]
        np.testing.assert_array_equal(ours, rows)


def test_from_av_copies_into_the_memory_allocate_gives_and_refuses_the_wrong_size() -> None:
    decoded = av.VideoFrame.from_ndarray(smooth_rgba(64, 48)[..., :3].copy(), format="rgb24").reformat(format="yuv420p")
    memory = np.zeros(64 * 48 * 3 // 2, np.uint8)
    asked: list[int] = []

    def allocate(nbytes: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        asked.append(nbytes)
        return memory

    frame = VideoFrame.from_av(decoded, allocate=allocate)
    assert asked == [memory.size]
    assert np.shares_memory(frame.to_ndarray(), memory)
    np.testing.assert_array_equal(frame.to_ndarray().reshape(-1), VideoFrame.from_av(decoded).to_ndarray().reshape(-1))
    # None: new memory, as without allocate
    assert not np.shares_memory(VideoFrame.from_av(decoded, allocate=lambda n: None).to_ndarray(), memory)
    with pytest.raises(ValueError, match=f"flat uint8 array of {memory.size} bytes"):
        VideoFrame.from_av(decoded, allocate=lambda n: np.zeros(n - 1, np.uint8))


def test_from_av_reformats_formats_without_a_twin() -> None:
    grey = av.VideoFrame.from_ndarray(np.full((4, 6), 100, np.uint8), format="gray")
    frame = VideoFrame.from_av(grey)
    assert frame.type == T.RGBA and frame.to_ndarray()[0, 0, 3] == 255
    full_range = av.VideoFrame(6, 4, "yuvj420p")
    for plane in full_range.planes:
        np.frombuffer(memoryview(plane), np.uint8)[:] = 128
    frame = VideoFrame.from_av(full_range)
    assert frame.type == T.I420 and (frame.width, frame.height) == (6, 4)


def test_to_av_with_a_format_converts_first() -> None:
    rgba = smooth_rgba(33, 17)
    frame = VideoFrame.from_ndarray(rgba, T.RGBA)
    yuv = frame.to_av("yuv420p")
    assert yuv.format.name == "yuv420p" and (yuv.width, yuv.height) == (33, 17)
    assert bytes(VideoFrame.from_av(yuv).data) == bytes(frame.convert(T.I420).data)
    assert frame.to_av("rgba").format.name == "rgba"
    with pytest.raises(ValueError, match="format must be one of"):
        frame.to_av("yuv411p")
