"""The one VP8 payload-descriptor parser: fields, byte offsets, truncation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media.keyframe import vp8_is_keyframe
from kitewire.media.vp8_descriptor import parse_vp8_descriptor, read_vp8_descriptor


def _descriptor(
    *, picture_id: int | None, wide: bool, tl0: int | None, tid: int | None, key_idx: int | None, start: bool
) -> bytes:
    first = 0x10 if start else 0x00
    ext = 0
    body = bytearray()
    if picture_id is not None:
        ext |= 0x80
        body += bytes((0x80 | (picture_id >> 8), picture_id & 0xFF)) if wide else bytes((picture_id & 0x7F,))
    if tl0 is not None:
        ext |= 0x40
        body.append(tl0)
    if tid is not None or key_idx is not None:
        ext |= (0x20 if tid is not None else 0) | (0x10 if key_idx is not None else 0)
        body.append(((tid or 0) << 6) | (key_idx or 0))
    if ext:
        return bytes((first | 0x80, ext)) + bytes(body)
    return bytes((first,))


@settings(max_examples=300, deadline=None)
@given(
    picture_id=st.none() | st.integers(0, 0x7FFF),
    wide=st.booleans(),
    tl0=st.none() | st.integers(0, 255),
    tid=st.none() | st.integers(0, 3),
    key_idx=st.none() | st.integers(0, 31),
    start=st.booleans(),
    frame=st.binary(min_size=1, max_size=8),
)
def test_fields_and_offsets_point_at_the_bytes(
    picture_id: int | None,
    wide: bool,
    tl0: int | None,
    tid: int | None,
    key_idx: int | None,
    start: bool,
    frame: bytes,
) -> None:
    if picture_id is not None and not wide:
        picture_id &= 0x7F
    head = _descriptor(picture_id=picture_id, wide=wide, tl0=tl0, tid=tid, key_idx=key_idx, start=start)
    payload = head + frame
    desc = parse_vp8_descriptor(payload)
    assert desc == read_vp8_descriptor(payload)
    assert desc.header_size == len(head)
    assert desc.start_of_partition == start
    assert (desc.picture_id, desc.tl0_pic_idx, desc.tid, desc.key_idx) == (picture_id, tl0, tid, key_idx)
    if picture_id is None:
        assert desc.picture_id_offset == -1 and desc.picture_id_size == 0
    else:
        size = 2 if wide else 1
        assert desc.picture_id_size == size and desc.picture_id_15bit == wide
        raw = payload[desc.picture_id_offset : desc.picture_id_offset + size]
        value = ((raw[0] & 0x7F) << 8 | raw[1]) if wide else raw[0] & 0x7F
        assert value == picture_id
    if tl0 is None:
        assert desc.tl0_pic_idx_offset == -1
    else:
        assert payload[desc.tl0_pic_idx_offset] == tl0
    assert desc.end <= desc.header_size
    # Keyframe detection reads the frame tag where the descriptor ends.
    assert vp8_is_keyframe(payload) == (start and not frame[0] & 0x01)
    # Every truncation of the descriptor is refused the same way by both entry points.
    for cut in range(len(head)):
        assert read_vp8_descriptor(payload[:cut]) is None
        with pytest.raises(ValueError, match="VP8 payload: expected|VP8 payload: .* set, expected"):
            parse_vp8_descriptor(payload[:cut])
