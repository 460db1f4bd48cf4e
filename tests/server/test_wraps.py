"""Every counter the server keeps that wraps, run across its wrap on purpose.

RTP sequence numbers (16 bits), timestamps (32 bits), VP8 picture ids (7 or
15 bits) and TL0PICIDX (8 bits) all wrap in a stream of ordinary length: at
720p30 a video track passes 32768 sequence numbers in under two minutes.
"""

from __future__ import annotations

from kitewire.server.forwarder import RtpRewriter

_H264_IDR = bytes([0x65, 0x88, 0x80])
_H264_DELTA = bytes([0x41, 0x9A])


def test_a_stream_longer_than_half_the_sequence_space_keeps_forwarding() -> None:
    # Issue 8: 32768 packets after the keyframe it switched at, the rewriter
    # took every packet for one older than the switch and froze the stream.
    rw = RtpRewriter("video/H264")
    rw.target_layer = 0
    start = 1000
    previous: int | None = None
    for i in range(3 * 65536):
        payload = _H264_IDR if i == 0 else _H264_DELTA
        mapped = rw.map_packet(0, (start + i) & 0xFFFF, (i // 4) * 3000, payload, None, i / 120)
        assert mapped is not None, f"packet {i} after the keyframe was dropped"
        if previous is not None:
            assert (mapped[0] - previous) & 0xFFFF == 1, f"outgoing sequence jumped at packet {i}"
        previous = mapped[0]
