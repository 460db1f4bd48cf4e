"""How writers cut content into chunks: never more than a chunk's bytes, never through a character."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitewire.rtc.data_stream import STREAM_CHUNK_SIZE, split_bytes, split_utf8


@given(text=st.text(min_size=0, max_size=3000), size=st.integers(min_value=4, max_value=64))
def test_text_pieces_are_whole_characters_within_the_size(text: str, size: int) -> None:
    pieces = list(split_utf8(text, size))
    assert all(0 < len(piece) <= size for piece in pieces)
    assert "".join(piece.decode("utf-8") for piece in pieces) == text  # each piece decodes alone


@given(data=st.binary(max_size=5000), size=st.integers(min_value=1, max_value=700))
def test_byte_pieces_are_full_but_the_last(data: bytes, size: int) -> None:
    pieces = list(split_bytes(data, size))
    assert b"".join(pieces) == data
    assert all(len(piece) == size for piece in pieces[:-1])
    assert not pieces or 0 < len(pieces[-1]) <= size


def test_a_size_below_one_character_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 4 bytes"):
        list(split_utf8("é", 3))


def test_the_default_chunk_is_livekits() -> None:
    assert STREAM_CHUNK_SIZE == 15_000
    assert [len(p) for p in split_bytes(b"x" * 31_000)] == [15_000, 15_000, 1_000]
