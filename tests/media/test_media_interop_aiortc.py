"""Cross-checks against aiortc's independent VP8/H264 RTP payload code.

aiortc (like libwebrtc) sends VP8 with a 15-bit PictureID and H264 as
STAP-A(SPS, PPS) + FU-A; its packets must assemble and decode with our code,
and our packets must depayload and decode with aiortc's.
"""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from aiortc.codecs.h264 import H264Decoder, H264Encoder, h264_depayload
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from kitewire.media import (
    FrameAssembler,
    VideoDecoder,
    VideoEncoder,
    is_keyframe,
    parse_vp8_descriptor,
)
from media_helpers import matches_pattern, pattern_frame

WIDTH, HEIGHT = 640, 480


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_aiortc_packets_assemble_and_decode_with_kitewire(codec: str) -> None:
    encoder = Vp8Encoder() if codec == "VP8" else H264Encoder()
    assembler = FrameAssembler(codec)
    decoder = VideoDecoder(codec)
    seq = 65_530
    decoded: dict[int, av.VideoFrame] = {}
    for index in range(12):
        frame = pattern_frame(index, WIDTH, HEIGHT)
        frame.pts = index * 3000
        frame.time_base = Fraction(1, 90_000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=index == 0)
        assert payloads
        if codec == "VP8":
            assert parse_vp8_descriptor(payloads[0]).picture_id_15bit
        if index == 0:
            assert is_keyframe(f"video/{codec}", payloads[0])
        for position, payload in enumerate(reversed(payloads)):  # arrive in reverse
            real_position = len(payloads) - 1 - position
            marker = real_position == len(payloads) - 1
            for assembled in assembler.push((seq + real_position) & 0xFFFF, timestamp, marker, payload, index / 30):
                for picture in decoder.decode(assembled.data):
                    decoded[round(assembled.timestamp / 3000)] = picture
        seq += len(payloads)
    assert sorted(decoded) == list(range(12))
    for index, picture in decoded.items():
        assert (picture.width, picture.height) == (WIDTH, HEIGHT)
        assert matches_pattern(picture, index)


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_kitewire_packets_depayload_and_decode_with_aiortc(codec: str) -> None:
    encoder = VideoEncoder(codec, WIDTH, HEIGHT, 1_500_000)
    decoder = Vp8Decoder() if codec == "VP8" else H264Decoder()
    depayload = vp8_depayload if codec == "VP8" else h264_depayload
    for index in range(8):
        encoded = encoder.encode(pattern_frame(index, WIDTH, HEIGHT))
        data = b"".join(depayload(payload) for payload in encoded)
        pictures = decoder.decode(JitterFrame(data=data, timestamp=index * 3000))
        assert len(pictures) == 1
        picture = pictures[0]
        assert isinstance(picture, av.VideoFrame)
        assert (picture.width, picture.height) == (WIDTH, HEIGHT)
        assert matches_pattern(picture.reformat(format="yuv420p"), index)
