"""Opus through PyAV and the audio jitter buffer: real codec, reordering, loss, DTX and wraps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media.audio_jitter import AudioJitterBuffer, Gap, Packet
from kitewire.media.opus import OPUS_FRAME_SAMPLES, OpusDecoder, OpusEncoder, opus_frame_samples
from kitewire.transport.rtp import audio_level_dbov, decode_audio_level, encode_audio_level

from audio_signal import dominant_frequency, sine, snr_db


def _encode(encoder: OpusEncoder, pcm: np.ndarray) -> list[bytes]:
    packets: list[bytes] = []
    step = OPUS_FRAME_SAMPLES * encoder.num_channels
    flat = pcm.reshape(-1)
    for start in range(0, len(flat) - step + 1, step):
        packets += encoder.encode(flat[start : start + step].tobytes())
    return packets


def test_opus_mono_sine_survives_with_snr_over_30_db() -> None:
    encoder, decoder = OpusEncoder(1, bitrate=48_000), OpusDecoder(2)
    packets = _encode(encoder, sine(440, 2.0))
    assert all(opus_frame_samples(packet) == OPUS_FRAME_SAMPLES for packet in packets)
    decoded = np.frombuffer(b"".join(decoder.decode(p) for p in packets), dtype=np.int16).reshape(-1, 2)
    left = decoded[4800:, 0]
    assert dominant_frequency(left, 48_000) == pytest.approx(440, abs=1)
    assert snr_db(left, 48_000, [440]) >= 30


def test_opus_stereo_keeps_two_tones_apart() -> None:
    stereo = np.stack([sine(440, 2.0), sine(660, 2.0)], axis=1)
    encoder, decoder = OpusEncoder(2, bitrate=96_000), OpusDecoder(2)
    decoded = np.frombuffer(b"".join(decoder.decode(p) for p in _encode(encoder, stereo)), dtype=np.int16)
    left, right = decoded.reshape(-1, 2)[4800:].T
    assert dominant_frequency(left, 48_000) == pytest.approx(440, abs=1)
    assert dominant_frequency(right, 48_000) == pytest.approx(660, abs=1)
    assert snr_db(left, 48_000, [440]) >= 30 and snr_db(right, 48_000, [660]) >= 30


def test_opus_dtx_makes_silence_small() -> None:
    encoder, always = OpusEncoder(1, dtx=True), OpusEncoder(1)
    silence = np.zeros(48_000, dtype=np.int16)
    assert len(_encode(always, silence)) == 50
    packets = _encode(encoder, silence)
    assert 10 <= len(packets) <= 14 and encoder.frames_suppressed == 50 - len(packets)
    assert len(_encode(encoder, sine(440, 0.2))) == 10  # sound is sent at once


def test_opus_bad_input_is_a_value_error_and_garbage_does_not_crash() -> None:
    with pytest.raises(ValueError, match="1920 bytes"):
        OpusEncoder(1).encode(bytes(100))
    with pytest.raises(ValueError, match="1 or 2"):
        OpusEncoder(3)
    with pytest.raises(ValueError, match="bitrate"):
        OpusEncoder(1, bitrate=1)
    with pytest.raises(ValueError, match="at least 1 byte"):
        opus_frame_samples(b"")
    decoder = OpusDecoder(2)
    for garbage in (b"\xff", b"\x03\x00", bytes(range(256))):
        decoder.decode(garbage)  # decodes to something or counts an error; never raises
    good = OpusEncoder(1).encode(sine(440, 0.02).tobytes())
    assert len(decoder.decode(good[0])) == OPUS_FRAME_SAMPLES * 2 * 2


def _fixed(_: bytes) -> int:
    return 960


def test_jitter_buffer_passes_in_order_packets_without_delay() -> None:
    buffer = AudioJitterBuffer(_fixed)
    out = buffer.push(10, 0, b"a", 0.0) + buffer.push(11, 960, b"b", 0.02)
    assert out == [Packet(0, b"a"), Packet(960, b"b")]


def test_jitter_buffer_reorders_within_the_target_delay() -> None:
    buffer = AudioJitterBuffer(_fixed)
    assert buffer.push(1, 0, b"a", 0.0) == [Packet(0, b"a")]
    assert buffer.push(3, 1920, b"c", 0.040) == []
    assert buffer.push(2, 960, b"b", 0.045) == [Packet(960, b"b"), Packet(1920, b"c")]
    assert buffer.packets_lost == 0


def test_jitter_buffer_declares_a_hole_lost_after_the_target_delay() -> None:
    buffer = AudioJitterBuffer(_fixed)
    buffer.push(1, 0, b"a", 0.0)
    assert buffer.push(3, 1920, b"c", 0.040) == []
    assert buffer.pop_ready(0.040 + buffer.target_delay / 2) == []
    assert buffer.pop_ready(0.040 + buffer.target_delay + 0.001) == [Gap(960, lost=True), Packet(1920, b"c")]
    assert buffer.packets_lost == 1
    late = buffer.push(2, 960, b"b", 0.2)  # too late now: only concealment comes out
    assert not [item for item in late if isinstance(item, Packet)]
    assert buffer.packets_late == 1


def test_jitter_buffer_reports_a_dtx_pause_as_silence() -> None:
    buffer = AudioJitterBuffer(_fixed)
    buffer.push(1, 0, b"a", 0.0)
    assert buffer.push(2, 960 * 11, b"b", 0.22) == [Gap(9600, lost=False), Packet(9600 + 960, b"b")]


def test_jitter_target_grows_with_measured_jitter() -> None:
    steady, shaky = AudioJitterBuffer(_fixed), AudioJitterBuffer(_fixed)
    rng = np.random.default_rng(1)
    for index in range(200):
        steady.push(index, index * 960, b"x", index * 0.02)
        shaky.push(index, index * 960, b"x", index * 0.02 + float(rng.uniform(0, 0.03)))
    assert steady.target_delay == pytest.approx(0.02)
    assert shaky.target_delay > 0.03
    assert shaky.target_delay <= 0.2


@settings(max_examples=40, deadline=None)
@given(
    first_seq=st.integers(0, 0xFFFF),
    first_ts=st.integers(0, 0xFFFFFFFF),
    drop=st.sets(st.integers(1, 289), max_size=30),
)
def test_jitter_buffer_runs_across_sequence_and_timestamp_wraps(first_seq: int, first_ts: int, drop: set[int]) -> None:
    buffer = AudioJitterBuffer(_fixed)
    out: list[Packet | Gap] = []
    count = 300
    for index in range(count):
        now = index * 0.02
        if index not in drop:
            out += buffer.push((first_seq + index) & 0xFFFF, (first_ts + index * 960) & 0xFFFFFFFF, b"x", now)
        out += buffer.pop_ready(now)
    out += buffer.pop_ready((count - 1) * 0.02)
    packets = [item for item in out if isinstance(item, Packet)]
    gaps = [item for item in out if isinstance(item, Gap)]
    # every lost frame concealed exactly once (ahead of time or as its hole), nothing else
    assert len(packets) == count - len(drop)
    assert sum(gap.samples for gap in gaps) == 960 * len(drop)
    assert all(gap.lost for gap in gaps)
    assert [p.timestamp for p in packets] == sorted(
        {(first_ts + i * 960) & 0xFFFFFFFF for i in range(count) if i not in drop},
        key=lambda ts: (ts - first_ts) & 0xFFFFFFFF,
    )


def test_audio_level_extension_follows_rfc_6464() -> None:
    full_scale = np.full(960, 32767, dtype=np.int16).tobytes()
    assert audio_level_dbov(full_scale) == 0
    assert audio_level_dbov(bytes(1920)) == 127
    assert audio_level_dbov((sine(440, 0.02, amplitude=0.1)).tobytes()) == 23  # 0.1 peak: -20 dB, sine rms -3 dB
    assert decode_audio_level(encode_audio_level(23, True)) == (23, True)
    assert encode_audio_level(127, False) == b"\x7f"
    with pytest.raises(ValueError, match="0..127"):
        encode_audio_level(128, True)
    with pytest.raises(ValueError, match="whole int16"):
        audio_level_dbov(b"\x00")


def test_jitter_buffer_conceals_ahead_when_packets_stop_and_drops_them_if_they_come_late() -> None:
    buffer = AudioJitterBuffer(_fixed, max_fill=0.1)
    buffer.push(1, 0, b"a", 0.0)
    assert buffer.pop_ready(0.039) == []
    # a frame's time plus the 20 ms target delay without a packet: one frame concealed
    assert buffer.pop_ready(0.041) == [Gap(960, lost=True)]
    # the late packet is dropped; the next one plays on without a gap
    assert buffer.push(2, 960, b"b", 0.05) == []
    assert buffer.push(3, 1920, b"c", 0.06) == [Packet(1920, b"c")]
    # a long silence: at most max_fill is concealed, and the pause after it is shortened by that much
    fills = buffer.pop_ready(1.0)
    assert fills == [Gap(960, lost=True)] * 5
    assert buffer.push(4, 1920 + 960 * 50, b"d", 1.01) == [
        Gap(960 * 49 - 4800, lost=False),
        Packet(1920 + 960 * 50, b"d"),
    ]


def test_libopus_recovers_a_lost_frame_from_fec_better_than_plc_guesses_it() -> None:
    from kitewire.media.opus import OpusConcealingDecoder

    assert OpusConcealingDecoder.available()  # PyAV's wheel ships libopus
    # speech-like content (a tone that changes pitch every frame) so that guessing is not enough
    rng = np.random.default_rng(3)
    tone = np.concatenate([sine(float(rng.uniform(200, 800)), 0.02) for _ in range(60)])
    packets = _encode(OpusEncoder(1, bitrate=32_000, fec=True, expected_loss=30, application="voip"), tone)
    lost = 30
    errors = {}
    for way in ("fec", "plc"):
        decoder = OpusConcealingDecoder(2)
        pieces = []
        for index, packet in enumerate(packets):
            if index == lost:
                pieces.append(decoder.recover(packets[index + 1], 960) if way == "fec" else decoder.conceal(960))
            else:
                pieces.append(decoder.decode(packet))
        assert all(len(piece) == 960 * 2 * 2 for piece in pieces)
        decoded = np.frombuffer(b"".join(pieces), dtype=np.int16).reshape(-1, 2)[:, 0].astype(np.float64)
        reference = np.frombuffer(
            b"".join(OpusConcealingDecoder(2).decode(p) for p in packets), dtype=np.int16
        ).reshape(-1, 2)[:, 0]
        window = slice(lost * 960, (lost + 1) * 960)
        errors[way] = float(np.mean((decoded[window] - reference[window]) ** 2))
    assert errors["fec"] < errors["plc"]
    with pytest.raises(ValueError, match="at least 1 byte"):
        OpusConcealingDecoder(2).decode(b"")
