"""LiveKit's packet trailer: exact bytes, round trips, odd input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitewire.media.packet_trailer import (
    FrameMetadata,
    append_trailer,
    build_trailer,
    max_user_data_size,
    restrict_to_features,
    split_trailer,
)


def test_trailer_bytes_are_xored_tlvs_length_and_magic() -> None:
    trailer = build_trailer(FrameMetadata(user_timestamp=0x0102030405060708, frame_id=0x0A0B0C0D))
    plain = bytes(byte ^ 0xFF for byte in trailer[:-4])
    assert plain == bytes([1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 0x0A, 0x0B, 0x0C, 0x0D, 21])
    assert trailer.endswith(b"LKTS") and len(trailer) == 21


def test_unset_fields_are_left_out_and_empty_metadata_adds_nothing() -> None:
    assert build_trailer(FrameMetadata()) == b""
    assert append_trailer(b"frame", FrameMetadata()) == b"frame"
    assert append_trailer(b"frame", None) == b"frame"
    assert len(build_trailer(FrameMetadata(frame_id=5))) == 6 + 5


@given(
    frame=st.binary(max_size=64),
    user_timestamp=st.integers(0, (1 << 64) - 1),
    frame_id=st.integers(0, (1 << 32) - 1),
    user_data=st.binary(max_size=200),
)
def test_round_trip(frame: bytes, user_timestamp: int, frame_id: int, user_data: bytes) -> None:
    user_data = user_data[: max_user_data_size(user_timestamp, frame_id)]
    metadata = FrameMetadata(user_timestamp, frame_id, user_data)
    stripped, parsed = split_trailer(append_trailer(frame, metadata))
    if metadata.is_empty:
        assert parsed is None
    else:
        assert parsed == metadata and stripped == frame


@given(st.binary(max_size=300))
def test_odd_input_never_raises_and_loses_nothing_without_a_trailer(data: bytes) -> None:
    stripped, parsed = split_trailer(data)
    if parsed is None:
        assert stripped == data
    else:
        assert data.startswith(stripped)


def test_a_length_running_past_the_frame_is_not_a_trailer() -> None:
    assert split_trailer(bytes([0xFF ^ 200]) + b"LKTS") == (bytes([0xFF ^ 200]) + b"LKTS", None)


def test_features_select_fields_and_bad_values_are_refused() -> None:
    full = FrameMetadata(user_timestamp=9, frame_id=3, user_data=b"ab")
    assert restrict_to_features(full, frozenset({1})) == FrameMetadata(frame_id=3)
    assert restrict_to_features(full, frozenset()) is None
    assert restrict_to_features(FrameMetadata(frame_id=3), frozenset({0})) is None
    with pytest.raises(ValueError, match="user_data"):
        FrameMetadata(user_data=bytes(300))
    with pytest.raises(ValueError, match="user_timestamp"):
        FrameMetadata(user_timestamp=-1)
    assert FrameMetadata(frame_id=2).HasField("frame_id") and not FrameMetadata().HasField("user_data")


def test_metadata_pickles_so_it_can_cross_to_a_media_process() -> None:
    import pickle

    metadata = FrameMetadata(user_timestamp=5, frame_id=6, user_data=b"\x00\xff")
    assert pickle.loads(pickle.dumps(metadata)) == metadata
