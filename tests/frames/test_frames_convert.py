"""Conversions: every pair, flips, exact lossless paths, BT.601 colours, round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from frames_helpers import (
    ALL_TYPES,
    CHANNEL_INDEX,
    ODD_SIZES,
    PACKED_TYPES,
    YUV_TYPES,
    packed_from_rgba,
    random_frame,
    rgba_from_packed,
    smooth_rgba,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.frames import VideoBufferType as T
from kitewire.frames import VideoFrame, buffer_size

# every test here runs with each conversion engine (see conftest.py)
pytestmark = pytest.mark.usefixtures("engine")

PAIRS = list(itertools.product(ALL_TYPES, ALL_TYPES))


@pytest.mark.parametrize("width,height", ODD_SIZES + [(4, 2), (16, 10)])
def test_every_pair_with_and_without_flip_has_right_type_size_and_length(width: int, height: int) -> None:
    for source_type in ALL_TYPES:
        frame = random_frame(source_type, width, height, seed=source_type)
        for target_type in ALL_TYPES:
            plain = frame.convert(target_type)
            flipped = frame.convert(target_type, flip_y=True)
            for out in (plain, flipped):
                assert out.type == target_type
                assert (out.width, out.height) == (width, height)
                assert len(out.data) == buffer_size(target_type, width, height)
            # flip_y is exactly a vertical mirror of the unflipped result, plane by plane,
            # except RGB -> YUV at odd heights, which (like libyuv) converts the mirrored
            # source so chroma rows pair up from the bottom
            mirrored_first = height % 2 == 1 and source_type in PACKED_TYPES and target_type in YUV_TYPES
            if mirrored_first:
                upside_down = VideoFrame.from_ndarray(frame.to_ndarray()[::-1], source_type)
                expected = upside_down.convert(target_type).plane_arrays()
            else:
                expected = [plane[::-1] for plane in plain.plane_arrays()]
            for expected_plane, flipped_plane in zip(expected, flipped.plane_arrays()):
                np.testing.assert_array_equal(
                    flipped_plane,
                    expected_plane,
                    err_msg=f"{T.Name(source_type)}->{T.Name(target_type)} {width}x{height}",
                )


@pytest.mark.parametrize("buffer_type", ALL_TYPES, ids=T.keys())
def test_same_type_conversion_is_a_copy(buffer_type: int) -> None:
    frame = random_frame(buffer_type, 5, 3, seed=7)
    copy = frame.convert(buffer_type)
    assert bytes(copy.data) == bytes(frame.data)
    assert not np.shares_memory(copy.to_ndarray(), frame.to_ndarray())
    flipped = frame.convert(buffer_type, flip_y=True)
    for original, mirrored in zip(frame.plane_arrays(), flipped.plane_arrays()):
        np.testing.assert_array_equal(mirrored, original[::-1])


@pytest.mark.parametrize("width,height", [(1, 1), (3, 5), (641, 479), (64, 2)])
@pytest.mark.parametrize(
    "source_type,target_type",
    [(s, t) for s in PACKED_TYPES for t in PACKED_TYPES if s != t],
    ids=lambda v: T.Name(v),
)
def test_packed_channel_swaps_are_exact(source_type: int, target_type: int, width: int, height: int) -> None:
    rng = np.random.default_rng(width * 31 + height)
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    if source_type == T.RGB24:
        rgba[..., 3] = 255  # RGB24 has no alpha; converting from it must give 255
    source = VideoFrame.from_ndarray(packed_from_rgba(rgba, source_type), source_type)
    expected = packed_from_rgba(rgba, target_type)
    np.testing.assert_array_equal(source.convert(target_type).to_ndarray(), expected)
    np.testing.assert_array_equal(source.convert(target_type, flip_y=True).to_ndarray(), expected[::-1])


# RGB -> YUV -> RGB error bound: 8-bit YUV quantisation plus libyuv's 6-bit
# fixed-point YUV -> RGB coefficients (livekit, like libyuv, returns pure blue as 251)
ROUND_TRIP_TOLERANCE = 5

# BT.601 limited-range values of flat colours: (R, G, B) -> (Y, U, V)
FLAT_COLOURS = {
    "red": ((255, 0, 0), (82, 90, 240)),
    "green": ((0, 255, 0), (145, 54, 34)),
    "blue": ((0, 0, 255), (41, 240, 110)),
    "white": ((255, 255, 255), (235, 128, 128)),
    "black": ((0, 0, 0), (16, 128, 128)),
    "grey": ((128, 128, 128), (126, 128, 128)),
}


def _flat_yuv(target_type: int, frame: VideoFrame) -> tuple[set[int], set[int], set[int]]:
    planes = frame.plane_arrays()
    if target_type == T.NV12:
        y, u, v = planes[0], planes[1][..., 0], planes[1][..., 1]
    else:
        y, u, v = planes[0], planes[1], planes[2]
    shift = 2 if target_type == T.I010 else 0
    return (
        set(np.unique(y >> shift).tolist()),
        set(np.unique(u >> shift).tolist()),
        set(np.unique(v >> shift).tolist()),
    )


@pytest.mark.parametrize("colour", list(FLAT_COLOURS))
@pytest.mark.parametrize("width,height", [(4, 4), (3, 5)])
def test_flat_colours_give_bt601_limited_range_values(colour: str, width: int, height: int) -> None:
    rgb, (y, u, v) = FLAT_COLOURS[colour]
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 200
    for source_type in PACKED_TYPES:
        source = VideoFrame.from_ndarray(packed_from_rgba(rgba, source_type), source_type)
        for target_type in YUV_TYPES:
            converted = source.convert(target_type)
            ys, us, vs = _flat_yuv(target_type, converted)
            label = f"{colour} {T.Name(source_type)}->{T.Name(target_type)}"
            assert len(ys) == len(us) == len(vs) == 1, label
            assert abs(ys.pop() - y) <= 1 and abs(us.pop() - u) <= 1 and abs(vs.pop() - v) <= 1, label
            if target_type == T.I420A:
                alpha = converted.plane_arrays()[3]
                assert np.all(alpha == (255 if source_type == T.RGB24 else 200)), label
            # and back to every packed layout: the original colour within rounding
            for back_type in PACKED_TYPES:
                back = rgba_from_packed(converted.convert(back_type).to_ndarray(), back_type)
                error = np.abs(back[..., :3].astype(int) - np.array(rgb)).max()
                assert error <= ROUND_TRIP_TOLERANCE, f"{label}->{T.Name(back_type)}"


def test_i420a_alpha_round_trips_with_rgba() -> None:
    rgba = smooth_rgba(9, 7, seed=3)
    i420a = VideoFrame.from_ndarray(rgba, T.RGBA).convert(T.I420A)
    np.testing.assert_array_equal(i420a.plane_arrays()[3], rgba[..., 3])
    for target_type in (T.RGBA, T.ABGR, T.ARGB, T.BGRA):
        back = rgba_from_packed(i420a.convert(target_type).to_ndarray(), target_type)
        np.testing.assert_array_equal(back[..., 3], rgba[..., 3])
    # planar formats without alpha give opaque pixels
    for source_type in (T.I420, T.I422, T.I444, T.I010, T.NV12):
        opaque = i420a.convert(source_type).convert(T.I420A)
        assert np.all(opaque.plane_arrays()[3] == 255)
        assert np.all(i420a.convert(source_type).convert(T.BGRA).to_ndarray()[..., 3] == 255)


def test_i010_is_a_two_bit_shift_of_8bit() -> None:
    frame = random_frame(T.I420, 7, 5, seed=11)
    ten_bit = frame.convert(T.I010)
    for eight, ten in zip(frame.plane_arrays(), ten_bit.plane_arrays()):
        assert ten.dtype == np.uint16
        np.testing.assert_array_equal(ten, eight.astype(np.uint16) << 2)
    np.testing.assert_array_equal(ten_bit.convert(T.I420).to_ndarray(), frame.to_ndarray())
    # low bits are dropped, not rounded, and invalid words above 10 bits saturate
    words = np.full(buffer_size(T.I010, 2, 2) // 2, 1023, dtype=np.uint16)
    words[0] = 7
    words[1] = 0xFFFF
    eight_bit = VideoFrame(2, 2, T.I010, words).convert(T.I420).plane_arrays()[0]
    assert eight_bit[0, 0] == 1 and eight_bit[0, 1] == 255


@pytest.mark.parametrize("width,height", [(1, 1), (3, 5), (6, 4), (33, 17)])
@pytest.mark.parametrize("via", [T.I420A, T.I422, T.I444, T.I010, T.NV12])
def test_i420_round_trips_through_planar_layouts_exactly(via: int, width: int, height: int) -> None:
    frame = random_frame(T.I420, width, height, seed=width + height)
    back = frame.convert(via).convert(T.I420)
    np.testing.assert_array_equal(back.to_ndarray(), frame.to_ndarray())


def test_chroma_reduction_averages_2x2_blocks_and_odd_edges() -> None:
    # I444 -> I420: each chroma sample is the mean of its (up to) 2x2 block
    width, height = 5, 3
    rng = np.random.default_rng(5)
    i444 = rng.integers(0, 256, (3, height, width), dtype=np.uint8)
    out = VideoFrame.from_ndarray(i444, T.I444).convert(T.I420).plane_arrays()
    u = i444[1].astype(float)
    for row in range(2):
        for column in range(3):
            block = u[row * 2 : row * 2 + 2, column * 2 : column * 2 + 2]
            assert abs(out[1][row, column] - block.mean()) <= 0.5 + 1e-9


@pytest.mark.parametrize("flip_y", [False, True])
@pytest.mark.parametrize("width", [1, 7, 64])
def test_i444_to_i422_averages_horizontal_pairs_rounding_up(width: int, flip_y: bool) -> None:
    height = 5
    i444 = np.random.default_rng(width).integers(0, 256, (3, height, width), dtype=np.uint8)
    out = VideoFrame.from_ndarray(i444, T.I444).convert(T.I422, flip_y=flip_y).plane_arrays()
    flipped = i444[:, ::-1] if flip_y else i444
    np.testing.assert_array_equal(out[0], flipped[0])
    for source, reduced in zip(flipped[1:], out[1:]):
        padded = np.concatenate([source, source[:, -1:]], axis=1) if width % 2 else source
        pairs = padded.astype(int)
        expected = (pairs[:, 0::2] + pairs[:, 1::2] + 1) // 2  # an odd last column averages itself
        np.testing.assert_array_equal(reduced, expected)


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 24),
    height=st.integers(1, 24),
    seed=st.integers(0, 2**32 - 1),
    packed=st.sampled_from(PACKED_TYPES),
    planar=st.sampled_from(YUV_TYPES),
)
def test_rgb_round_trip_through_yuv_stays_close(width: int, height: int, seed: int, packed: int, planar: int) -> None:
    # colours constant over each 2x2 block survive chroma subsampling, so the
    # round trip error is only the 8-bit quantisation of the YUV values
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, ((height + 1) // 2, (width + 1) // 2, 4), dtype=np.uint8)
    rgba = blocks.repeat(2, axis=0).repeat(2, axis=1)[:height, :width]
    source = VideoFrame.from_ndarray(packed_from_rgba(np.ascontiguousarray(rgba), packed), packed)
    back = rgba_from_packed(source.convert(planar).convert(packed).to_ndarray(), packed)
    assert np.abs(back[..., :3].astype(int) - rgba[..., :3]).max() <= ROUND_TRIP_TOLERANCE
    if packed != T.RGB24 and planar == T.I420A:
        np.testing.assert_array_equal(back[..., 3], rgba[..., 3])


def test_conversion_reads_only_the_layout_prefix_of_a_longer_buffer() -> None:
    rgba = smooth_rgba(4, 4)
    longer = bytearray(rgba.tobytes()) + b"\x07" * 13
    frame = VideoFrame(4, 4, T.RGBA, longer)
    assert len(frame.data) == 64
    np.testing.assert_array_equal(frame.convert(T.BGRA).to_ndarray()[..., 0], rgba[..., 2])


def test_channel_index_table_matches_layout_names() -> None:
    for buffer_type, (r, g, b, a) in CHANNEL_INDEX.items():
        name = T.Name(buffer_type)
        letters = "RGB" if buffer_type == T.RGB24 else name
        assert letters.index("R") == r and letters.index("G") == g and letters.index("B") == b
        assert a == (letters.index("A") if "A" in letters else None)


@pytest.mark.parametrize("flip_y", [False, True])
@pytest.mark.parametrize("width,height", [(1, 1), (3, 5), (34, 18), (641, 479)])
def test_libyuv_and_opencv_engines_agree(width: int, height: int, flip_y: bool) -> None:
    from kitewire.frames import _libyuv

    if not _libyuv.available():
        pytest.skip("libyuv shared library (Debian package libyuv0) is not installed")
    rgba = smooth_rgba(width, height, seed=width)
    sources = {t: VideoFrame.from_ndarray(rgba, T.RGBA).convert(t) for t in ALL_TYPES}
    for source_type, target_type in PAIRS:
        previous = _libyuv.set_enabled(True)
        try:
            with_libyuv = sources[source_type].convert(target_type, flip_y=flip_y)
            _libyuv.set_enabled(False)
            without = sources[source_type].convert(target_type, flip_y=flip_y)
        finally:
            _libyuv.set_enabled(previous)
        ours = with_libyuv.to_ndarray().reshape(-1).astype(int)
        theirs = without.to_ndarray().reshape(-1).astype(int)
        tolerance = 12 if target_type == T.I010 else 3  # I010 words are 4x the 8-bit scale
        assert np.abs(ours - theirs).max() <= tolerance, f"{T.Name(source_type)}->{T.Name(target_type)}"


@pytest.mark.parametrize("width,height", [(1, 1), (3, 5), (6, 4), (33, 17)])
def test_chroma_expansion_repeats_samples(width: int, height: int) -> None:
    frame = random_frame(T.I420, width, height, seed=3)
    _, u, v = frame.plane_arrays()
    # I420 -> I444 doubles chroma both ways; I420 -> I422 doubles its rows only
    for target_type, factor_x in ((T.I444, 2), (T.I422, 1)):
        planes = frame.convert(target_type).plane_arrays()
        for source, expanded in zip((u, v), planes[1:]):
            expected = source.repeat(factor_x, axis=1)[:, :width].repeat(2, axis=0)[:height]
            np.testing.assert_array_equal(expanded, expected, err_msg=T.Name(target_type))
