"""Encoder/decoder round trips through packetization, a lossy link and the assembler."""

from __future__ import annotations

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kitewire.media import (
    VideoDecoder,
    VideoEncoder,
    create_depacketizer,
    is_keyframe,
    normalize_codec,
)
from media_helpers import matches_pattern, pattern_frame, run_link

CODECS = ("VP8", "H264")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("width", "height"),
    [(640, 480), (641, 479), (1280, 720), (320, 180), (97, 61)],
)
def test_round_trip_over_a_bad_link_keeps_every_frame_and_its_pattern(codec: str, width: int, height: int) -> None:
    frames = 24
    stats = run_link(codec, width, height, frames, drop_rate=0.05, duplicate_rate=0.05, reorder=True, seed=width)
    expected_width = width & ~1 if codec == "H264" else width
    expected_height = height & ~1 if codec == "H264" else height
    assert sorted(stats.decoded) == list(range(frames))
    for index, picture in stats.decoded.items():
        assert (picture.width, picture.height) == (expected_width, expected_height)
        assert picture.format.name == "yuv420p"
        assert matches_pattern(picture, index), f"frame {index} does not show its pattern"
    # Every dropped packet came back through a NACK, so nobody asked for a keyframe.
    assert stats.keyframe_requests == 0
    assert stats.retransmitted >= stats.dropped


@pytest.mark.parametrize("codec", CODECS)
def test_wraparound_of_sequence_numbers_mid_stream(codec: str) -> None:
    stats = run_link(codec, 640, 480, 20, first_seq=65_530, reorder=True, seed=7)
    assert sorted(stats.decoded) == list(range(20))
    seqs = [frame.first_seq for frame in stats.released]
    assert min(seqs) < 100 and max(seqs) > 65_000


@pytest.mark.parametrize("codec", CODECS)
def test_unrecoverable_loss_requests_a_keyframe_and_skips_dependent_frames(codec: str) -> None:
    stats = run_link(codec, 640, 480, 40, drop_frames=frozenset({10}), seed=3)
    assert stats.keyframe_requests >= 1
    missing = sorted(set(range(40)) - set(stats.decoded))
    # The damaged frame and the delta frames after it are withheld until the keyframe ...
    assert missing[0] == 10
    assert missing == list(range(10, 10 + len(missing)))
    assert len(missing) < 15
    # ... and everything decoded shows the right picture (no smeared deltas).
    for index, picture in stats.decoded.items():
        assert matches_pattern(picture, index)


@pytest.mark.parametrize("codec", CODECS)
def test_keyframe_detection_on_real_encoder_output(codec: str) -> None:
    encoder = VideoEncoder(codec, 1280, 720, 1_500_000)
    keyframes_at = {0, 7, 15}
    for index in range(20):
        encoded = encoder.encode(pattern_frame(index, 1280, 720), keyframe=index in keyframes_at)
        assert encoded, "the encoder produced nothing"
        assert encoded.keyframe == (index in keyframes_at)
        flags = [is_keyframe(f"video/{codec}", payload) for payload in encoded]
        if index in keyframes_at:
            assert flags[0], "the first packet of a keyframe must be detected"
            if codec == "VP8":
                # Only the packet that starts partition 0 carries the frame tag.
                assert flags == [True] + [False] * (len(flags) - 1)
            else:
                # STAP-A(SPS, PPS) then FU-A start of the IDR: True; FU-A middles/ends: False.
                assert flags[1:] == [p[0] & 0x1F == 28 and bool(p[1] & 0x80) for p in encoded[1:]]
        else:
            assert not any(flags)


@pytest.mark.parametrize("codec", CODECS)
def test_h264_keyframes_carry_sps_and_pps_and_payloads_fit_the_mtu(codec: str) -> None:
    encoder = VideoEncoder(codec, 1280, 720, 4_000_000, max_payload_size=1000)
    depacketizer = create_depacketizer(codec)
    for index in range(5):
        encoded = encoder.encode(pattern_frame(index, 1280, 720), keyframe=index == 3)
        assert all(len(payload) <= 1000 for payload in encoded)
        assert depacketizer.is_frame_start(encoded[0])
        if codec == "H264" and encoded.keyframe:
            annexb = depacketizer.depacketize(encoded)
            types = [annexb[i + 4] & 0x1F for i in range(len(annexb) - 4) if annexb[i : i + 4] == b"\x00\x00\x00\x01"]
            assert types[:3] == [7, 8, 5]


@pytest.mark.parametrize("codec", CODECS)
def test_encoder_accepts_other_formats_and_sizes_and_kitewire_frames(codec: str) -> None:
    encoder = VideoEncoder(codec, 320, 240, 500_000)
    decoder = VideoDecoder(codec)
    depacketizer = create_depacketizer(codec)
    rgb = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 90, np.uint8), format="rgb24")
    encoded = encoder.encode(rgb)
    assert (encoded.width, encoded.height) == (320, 240)
    pictures = decoder.decode(depacketizer.depacketize(encoded))
    assert [(p.width, p.height) for p in pictures] == [(320, 240)]

    from kitewire.frames import VideoBufferType, VideoFrame

    kite = VideoFrame(64, 48, VideoBufferType.RGBA, bytes(64 * 48 * 4))
    encoded = encoder.encode(kite)
    assert encoded and not encoded.keyframe
    assert decoder.decode(depacketizer.depacketize(encoded))

    with pytest.raises(ValueError, match="av.VideoFrame"):
        encoder.encode(b"not a frame")  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", CODECS)
def test_resolution_and_bitrate_changes_restart_with_a_keyframe(codec: str) -> None:
    encoder = VideoEncoder(codec, 320, 240, 300_000)
    decoder = VideoDecoder(codec)
    depacketizer = create_depacketizer(codec)
    assert encoder.encode(pattern_frame(0, 320, 240)).keyframe
    assert not encoder.encode(pattern_frame(1, 320, 240)).keyframe
    encoder.set_bitrate(310_000)  # within 15%: ignored, no keyframe
    assert encoder.bitrate == 300_000
    assert not encoder.encode(pattern_frame(2, 320, 240)).keyframe
    encoder.set_bitrate(1_000_000)
    assert encoder.bitrate == 1_000_000
    assert encoder.encode(pattern_frame(3, 320, 240)).keyframe
    encoder.set_resolution(161, 121)
    encoded = encoder.encode(pattern_frame(4, 320, 240))
    assert encoded.keyframe
    pictures = decoder.decode(depacketizer.depacketize(encoded))
    expected = (160, 120) if codec == "H264" else (161, 121)
    assert [(p.width, p.height) for p in pictures] == [expected]
    encoder.request_keyframe()
    assert encoder.encode(pattern_frame(5, 320, 240)).keyframe


def test_bad_encoder_arguments_raise_value_error_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="VP8, H264, VP9, AV1, H265.*got 'VP7'"):
        VideoEncoder("VP7")
    with pytest.raises(ValueError, match="frame size"):
        VideoEncoder("VP8", 0, 480)
    with pytest.raises(ValueError, match="bitrate"):
        VideoEncoder("VP8", 640, 480, bitrate=-5)
    with pytest.raises(ValueError, match="framerate"):
        VideoEncoder("VP8", 640, 480, framerate=0)
    with pytest.raises(ValueError, match="codec"):
        VideoDecoder("mjpeg")
    assert normalize_codec("video/h264") == "H264"
    assert normalize_codec(" vp8 ") == "VP8"


@pytest.mark.parametrize("codec", CODECS)
def test_decoder_recovers_at_the_next_keyframe_after_garbage(codec: str) -> None:
    encoder = VideoEncoder(codec, 320, 240, 800_000)
    decoder = VideoDecoder(codec)
    depacketizer = create_depacketizer(codec)
    streams = [depacketizer.depacketize(encoder.encode(pattern_frame(i, 320, 240))) for i in range(3)]
    assert decoder.needs_keyframe
    assert decoder.decode(streams[1]) == []  # a delta frame before any keyframe is skipped
    assert len(decoder.decode(streams[0])) == 1
    assert not decoder.needs_keyframe
    # Corrupt a delta frame: nothing raises, and output resumes at the next keyframe.
    junk = bytes([streams[2][0]]) + bytes(range(256)) * 4 if codec == "VP8" else b"\x00\x00\x00\x01\x41" + bytes(999)
    decoder.decode(junk, keyframe=False)
    decoder.decode(b"\x00\x00\x00\x01\x65\xff\xff" if codec == "H264" else b"\x10\x02\x00\x9d\x01\x2a\x00\x00\x00\x00")
    assert decoder.decode(b"") == []
    encoder.request_keyframe()
    keyframe = depacketizer.depacketize(encoder.encode(pattern_frame(9, 320, 240)))
    pictures = decoder.decode(keyframe)
    assert len(pictures) == 1 and matches_pattern(pictures[0], 9)
    assert not decoder.needs_keyframe


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=3000), keyframe=st.sampled_from([None, True, False]))
def test_decoder_never_crashes_on_garbage(codec: str, data: bytes, keyframe: bool | None) -> None:
    decoder = VideoDecoder(codec)
    for prefix in (b"", b"\x00\x00\x00\x01\x67", b"\x00\x00\x01\x65", b"\x10\x02\x00\x9d\x01\x2a"):
        pictures = decoder.decode(prefix + data, keyframe=keyframe)
        assert isinstance(pictures, list)
        for picture in pictures:
            assert picture.format.name == "yuv420p"


@pytest.mark.parametrize("codec", CODECS)
def test_rate_control_follows_capture_times(codec: str) -> None:
    # 10 fps into an encoder configured for 30 fps: without capture times it
    # budgets target/30 per frame and sends about a third of the target; with
    # them the budget follows the real frame interval.
    rng = np.random.default_rng(3)
    texture = np.kron(rng.integers(0, 256, (120, 160), dtype=np.uint8), np.ones((4, 4), np.uint8))
    target = 500_000
    bits_per_second = {}
    for with_times in (False, True):
        encoder = VideoEncoder(codec, 640, 480, target, 30.0)
        sent = 0
        for index in range(120):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, index * 5, axis=1), format="gray")
            encoded = encoder.encode(frame, capture_time=100 + index / 10 if with_times else None)
            if index >= 40:
                sent += sum(len(payload) for payload in encoded)
        bits_per_second[with_times] = sent * 8 / 8.0  # 80 frames at 10 fps = 8 s
    assert bits_per_second[True] > 1.6 * bits_per_second[False]
    assert bits_per_second[True] < 1.5 * target
    if codec == "H264":
        assert encoder.framerate == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize("codec", CODECS)
async def test_settings_change_from_the_event_loop_while_a_worker_encodes(codec: str) -> None:
    import asyncio

    encoder = VideoEncoder(codec, 320, 240, 400_000)
    loop = asyncio.get_running_loop()
    sizes = [(320, 240), (160, 120), (240, 180)]
    source = pattern_frame(0, 320, 240)
    results = []
    for index in range(40):
        job = loop.run_in_executor(None, lambda: encoder.encode(source.reformat(format="yuv420p")))
        # Poke the encoder while the worker may be inside encode().
        encoder.set_resolution(*sizes[index % 3])
        encoder.set_bitrate(200_000 if index % 2 else 900_000)
        encoder.request_keyframe()
        results.append(await job)
    decoder = VideoDecoder(codec)
    depacketizer = create_depacketizer(codec)
    for encoded in results:
        assert (encoded.width, encoded.height) in sizes
        pictures = decoder.decode(depacketizer.depacketize(encoded))
        assert [(p.width, p.height) for p in pictures] == [(encoded.width, encoded.height)]


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), drop_rate=st.floats(0.01, 0.3), retransmit=st.booleans())
def test_lossy_link_never_yields_a_wrong_picture(codec: str, seed: int, drop_rate: float, retransmit: bool) -> None:
    # Whatever is lost, a frame that reaches the application shows its own
    # picture: delta frames that depend on something lost are withheld.
    stats = run_link(
        codec,
        320,
        240,
        20,
        seed=seed,
        drop_rate=drop_rate,
        reorder=True,
        retransmit=retransmit,
        max_payload_size=300,
    )
    assert stats.decoded, "at least the first keyframe gets through"
    for index, picture in stats.decoded.items():
        assert matches_pattern(picture, index), f"frame {index} is corrupted"
    if retransmit:
        assert stats.keyframe_requests == 0
