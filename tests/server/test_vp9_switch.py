"""VP9 simulcast through the rewriter: a subscriber switched between layers sees one continuous
picture numbering (PictureID and TL0PICIDX renumbered as for VP8), across the 15- and 8-bit wraps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media.vp9_descriptor import read_vp9_descriptor
from kitewire.server.forwarder import RtpRewriter

# VP9 descriptor first byte: I P L F B E V Z
_I, _P, _L, _B, _E = 0x80, 0x40, 0x20, 0x08, 0x04


def _vp9_frame(picture_id: int, tl0: int, keyframe: bool) -> bytes:
    first = _I | _L | _B | _E | (0 if keyframe else _P)
    # 15-bit picture id, layer byte (TID 0, SID 0), TL0PICIDX (non-flexible mode), then the
    # frame: its uncompressed header says key or inter frame, as the keyframe rule reads it.
    frame_header = b"\x82\x49\x83\x42" if keyframe else b"\x86"
    return bytes([first, 0x80 | (picture_id >> 8), picture_id & 0xFF, 0x00, tl0]) + frame_header + bytes(20)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 0x7FFF),
    st.integers(0, 0x7FFF),
    st.integers(0, 0xFF),
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFF),
    st.integers(3, 40),
)
def test_picture_ids_stay_continuous_across_a_layer_switch(
    pid0: int, pid1: int, tl0_0: int, tl0_1: int, seq: int, switch_at: int
) -> None:
    rewriter = RtpRewriter("video/VP9")
    rewriter.target_layer = 0
    out: list[tuple[int, int]] = []
    frames = 0x8000 // 256 + 300  # long enough for one layer's TL0PICIDX to wrap
    for frame in range(frames):
        if frame == switch_at:
            rewriter.target_layer = 1
        for layer, (pid, tl0) in enumerate(((pid0, tl0_0), (pid1, tl0_1))):
            keyframe = frame == 0 or (layer == 1 and frame == switch_at + 2)
            payload = _vp9_frame((pid + frame) & 0x7FFF, (tl0 + frame) & 0xFF, keyframe)
            result = rewriter.rewrite(layer, (seq + frame) & 0xFFFF, frame * 3000, payload, frame / 30)
            if result is None:
                continue
            desc = read_vp9_descriptor(bytes(result.payload))
            assert desc is not None and desc.picture_id is not None and desc.tl0_pic_idx is not None
            assert bytes(result.payload)[desc.end :] == payload[desc.end :]
            out.append((desc.picture_id, desc.tl0_pic_idx))
    assert rewriter.current_layer == 1 and rewriter.switches == 2
    # One picture per frame time reaches the subscriber (the old layer's until the new one's keyframe,
    # which comes right after the old layer's picture of that moment), each numbered on from the last.
    assert len(out) == frames + 1
    for (pid_a, tl0_a), (pid_b, tl0_b) in zip(out, out[1:]):
        assert pid_b == (pid_a + 1) & 0x7FFF
        assert tl0_b == (tl0_a + 1) & 0xFF
