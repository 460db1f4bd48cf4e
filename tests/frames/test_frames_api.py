"""VideoFrame construction, properties, planes, enums and bad input."""

from __future__ import annotations

import ast
import inspect

import kitewire.frames as frames
import numpy as np
import pytest
from frames_helpers import ALL_TYPES, random_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.frames import (
    TrackKind,
    TrackSource,
    VideoBufferType,
    VideoCodec,
    VideoFrame,
    VideoQuality,
    VideoRotation,
    buffer_size,
)
from kitewire.frames import VideoBufferType as T
from kitewire.frames.video_frame import _byte_view
from livekit import rtc

ENUM_PAIRS = [
    (VideoBufferType, rtc.VideoBufferType),
    (VideoRotation, rtc.VideoRotation),
    (TrackSource, rtc.TrackSource),
    (TrackKind, rtc.TrackKind),
    (VideoCodec, rtc.VideoCodec),
    (VideoQuality, rtc.VideoQuality),
]


@pytest.mark.parametrize("ours,theirs", ENUM_PAIRS, ids=lambda e: getattr(e, "__name__", "livekit"))
def test_enums_match_livekit_numbering_and_api(ours: type, theirs: object) -> None:
    assert ours.items() == list(theirs.items())  # type: ignore[attr-defined]
    assert ours.keys() == list(theirs.keys())  # type: ignore[attr-defined]
    assert ours.values() == list(theirs.values())  # type: ignore[attr-defined]
    for name, number in ours.items():  # type: ignore[attr-defined]
        assert getattr(ours, name) == number == getattr(theirs, name)
        assert type(getattr(ours, name)) is int
        assert ours.Name(number) == theirs.Name(number) == name  # type: ignore[attr-defined]
        assert ours.Value(name) == number  # type: ignore[attr-defined]


def test_enum_lookups_reject_unknowns_with_value_error() -> None:
    with pytest.raises(ValueError, match="no name defined for value 99"):
        VideoBufferType.Name(99)
    with pytest.raises(ValueError, match="no value defined for name 'YUV'"):
        VideoBufferType.Value("YUV")
    assert VideoBufferType.Name(5) == "I420" and VideoBufferType.Value("NV12") == 10
    assert VideoBufferType.ValueType is int
    with pytest.raises(TypeError):
        VideoBufferType()


def test_livekit_enum_values_and_plain_ints_are_accepted_as_types() -> None:
    frame = random_frame(T.RGBA, 2, 2)
    assert frame.convert(rtc.VideoBufferType.I420).type == 5
    assert frame.convert(5).type == T.I420
    assert VideoFrame(2, 2, np.int64(0), bytes(16)).type == 0


def test_public_method_names_cover_livekits_video_frame() -> None:
    ours = {name for name in dir(VideoFrame) if not name.startswith("_")}
    theirs = {name for name in dir(rtc.VideoFrame) if not name.startswith("_")}
    assert theirs <= ours
    ours_convert = inspect.signature(VideoFrame.convert)
    assert list(ours_convert.parameters) == list(inspect.signature(rtc.VideoFrame.convert).parameters)
    assert ours_convert.parameters["flip_y"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(VideoFrame.__init__).parameters) == ["self", "width", "height", "type", "data"]


def test_repr_matches_livekit() -> None:
    ours = VideoFrame(4, 4, T.RGBA, bytearray(64))
    theirs = rtc.VideoFrame(4, 4, rtc.VideoBufferType.RGBA, bytearray(64))
    assert repr(ours) == repr(theirs) == "rtc.VideoFrame(width=4, height=4, type=RGBA)"


@pytest.mark.parametrize("buffer_type", ALL_TYPES, ids=T.keys())
def test_layout_sizes_and_planes_match_livekit(buffer_type: int) -> None:
    for width, height in [(1, 1), (3, 5), (641, 479), (4, 2)]:
        size = buffer_size(buffer_type, width, height)
        theirs = rtc.VideoFrame(width, height, buffer_type, bytearray(size))  # type: ignore[arg-type]
        ours = VideoFrame(width, height, buffer_type, bytearray(size))
        assert len(ours.data) == size
        index = 0
        while theirs.get_plane(index) is not None:
            their_plane = theirs.get_plane(index)
            our_plane = ours.get_plane(index)
            assert our_plane is not None and their_plane is not None
            assert our_plane.nbytes == their_plane.nbytes
            index += 1
        if buffer_type in (T.RGBA, T.ABGR, T.ARGB, T.BGRA, T.RGB24):
            whole = ours.get_plane(0)
            assert whole is not None and whole.nbytes == size
            index = 1
        assert ours.get_plane(index) is None
        assert ours.get_plane(-1) is None


def test_planes_point_into_the_frame_buffer() -> None:
    data = bytearray(range(6 * 4 + 2 * 3 * 2 * 2 + 6 * 4)) * 1
    frame = VideoFrame(6, 4, T.I420A, data)
    y, u, v, a = (frame.get_plane(n) for n in range(4))
    assert y is not None and u is not None and v is not None and a is not None
    assert bytes(y) == bytes(data[:24]) and bytes(u) == bytes(data[24:30])
    assert bytes(v) == bytes(data[30:36]) and bytes(a) == bytes(data[36:60])
    u[0] = 200  # writable planes of a writable buffer edit the frame in place
    assert data[24] == 200


def test_data_is_the_callers_buffer_without_copy() -> None:
    source = bytearray(16)
    frame = VideoFrame(2, 2, T.BGRA, source)
    frame.data[3] = 9
    assert source[3] == 9
    assert not frame.data.readonly
    assert VideoFrame(2, 2, T.BGRA, bytes(16)).data.readonly
    array = np.zeros((2, 2, 4), np.uint8)
    from_array = VideoFrame(2, 2, T.RGBA, array)
    assert np.shares_memory(from_array.to_ndarray(), array)
    view = memoryview(bytearray(40))[8:24]
    assert len(VideoFrame(2, 2, T.RGBA, view).data) == 16


def test_longer_buffers_are_accepted_and_trimmed_to_the_layout() -> None:
    frame = VideoFrame(2, 2, T.RGB24, bytearray(100))
    assert len(frame.data) == 12
    assert frame.to_ndarray().shape == (2, 2, 3)


@pytest.mark.parametrize(
    "width,height,buffer_type,data,message",
    [
        (0, 4, T.RGBA, bytes(64), "width must be at least 1, got 0"),
        (4, -2, T.RGBA, bytes(64), "height must be at least 1, got -2"),
        (4.0, 4, T.RGBA, bytes(64), "width must be an int"),
        (True, 4, T.RGBA, bytes(64), "width must be an int"),
        (4, 4, 11, bytes(64), "unknown value 11"),
        (4, 4, -1, bytes(64), "unknown value -1"),
        (4, 4, "RGBA", bytes(64), "type must be a VideoBufferType value"),
        (4, 4, None, bytes(64), "type must be a VideoBufferType value"),
        (4, 4, T.RGBA, bytes(63), "expected at least 64 bytes, got 63"),
        (3, 3, T.I420, bytes(16), "3x3 I420 frame: expected at least 17 bytes, got 16"),
        (2, 2, T.I010, bytes(11), "expected at least 12 bytes, got 11"),
        (4, 4, T.RGBA, [0] * 64, "data must be a bytes-like buffer"),
        (4, 4, T.RGBA, "x" * 64, "got str"),
        (4, 4, T.RGBA, None, "got NoneType"),
        (2, 2, T.RGBA, np.zeros((4, 8), np.uint8)[:, ::2], "non-contiguous numpy array"),
    ],
)
def test_bad_constructor_input_raises_value_error_naming_the_problem(
    width: object, height: object, buffer_type: object, data: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        VideoFrame(width, height, buffer_type, data)  # type: ignore[arg-type]


def test_bad_convert_target_raises_value_error() -> None:
    frame = random_frame(T.I420, 4, 4)
    with pytest.raises(ValueError, match="unknown value 42"):
        frame.convert(42)
    with pytest.raises(ValueError, match="VideoBufferType"):
        frame.convert("I420")


def test_non_contiguous_memoryview_is_rejected() -> None:
    strided = memoryview(bytearray(64))[::2]
    with pytest.raises(ValueError, match="non-contiguous memoryview"):
        VideoFrame(2, 2, T.RGBA, strided)


def test_multi_byte_buffers_are_viewed_as_bytes() -> None:
    words = np.arange(6, dtype=np.uint16)  # 12 bytes: a 2x2 I010 frame
    frame = VideoFrame(2, 2, T.I010, memoryview(words.data))
    assert bytes(frame.data) == words.tobytes()
    assert _byte_view(memoryview(words.data)).dtype == np.uint8


def test_everything_is_importable_from_the_package() -> None:
    for name in [
        "VideoFrame",
        "VideoBufferType",
        "VideoRotation",
        "TrackSource",
        "TrackKind",
        "VideoCodec",
        "VideoQuality",
    ]:
        assert hasattr(frames, name)
    from kitewire.utils import RingQueue

    assert RingQueue is not None


def test_frames_package_does_not_import_livekit() -> None:
    package_dir = inspect.getfile(frames).rsplit("/", 1)[0]
    import pathlib

    for path in pathlib.Path(package_dir).glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(not alias.name.startswith("livekit") for alias in node.names), path
            elif isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("livekit"), path


def test_sizes_beyond_the_limit_are_rejected() -> None:
    with pytest.raises(ValueError, match="width must be at most 32768, got 40000"):
        VideoFrame(40000, 1, T.RGBA, bytes(160000))


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(-2, 40),
    height=st.integers(-2, 40),
    buffer_type=st.integers(-1, 12),
    length_delta=st.integers(-8, 8),
    target_type=st.integers(0, 10),
    flip_y=st.booleans(),
)
def test_any_constructor_input_gives_a_frame_or_a_value_error(
    width: int, height: int, buffer_type: int, length_delta: int, target_type: int, flip_y: bool
) -> None:
    try:
        needed = buffer_size(buffer_type, max(width, 1), max(height, 1))
    except ValueError:
        needed = 64
    data = bytes(range(256)) * (max(needed + length_delta, 0) // 256 + 1)
    data = data[: max(needed + length_delta, 0)]
    try:
        frame = VideoFrame(width, height, buffer_type, data)
    except ValueError as error:
        assert str(error)
        return
    assert len(frame.data) == buffer_size(buffer_type, width, height)
    converted = frame.convert(target_type, flip_y=flip_y)
    assert len(converted.data) == buffer_size(target_type, width, height)
