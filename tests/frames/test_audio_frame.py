"""AudioFrame, combine_audio_frames and AudioResampler: livekit's layout, clear errors, real resampling."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from kitewire.frames.audio_frame import AudioFrame, combine_audio_frames
from kitewire.frames.audio_resampler import AudioResampler, AudioResamplerQuality

from audio_signal import dominant_frequency, sine, snr_db


def test_frame_layout_is_int16_interleaved_and_numpy_views_share_memory() -> None:
    frame = AudioFrame.create(48_000, 2, 480)
    assert frame.data.format == "h" and len(frame.data) == 960
    assert frame.duration == pytest.approx(0.01)
    view = frame.to_ndarray()
    assert view.shape == (480, 2)
    view[3, 1] = 1234  # writes through to the frame: no copy
    assert frame.data[7] == 1234
    flat = np.frombuffer(frame.data, dtype=np.int16)
    flat[0] = -5
    assert frame.to_ndarray()[0, 0] == -5


def test_frame_keeps_a_bytearray_without_copying() -> None:
    buffer = bytearray(40)
    frame = AudioFrame(buffer, 16_000, 1, 20)
    frame.data[0] = 77
    assert buffer[:2] == (77).to_bytes(2, "little")


@pytest.mark.parametrize(
    ("data", "rate", "channels", "samples", "message"),
    [
        (bytes(10), 48_000, 1, 10, "at least 20 bytes"),
        (bytes(21), 48_000, 1, 10, "even byte count"),
        (bytes(40), 0, 1, 10, "sample_rate"),
        (bytes(40), 500, 1, 10, "sample_rate between"),
        (bytes(40), 48_000, 0, 10, "num_channels"),
        (bytes(40), 48_000, 9, 1, "num_channels between"),
        (bytes(40), 48_000, 1, -1, "samples_per_channel"),
        ("text", 48_000, 1, 1, "bytes, bytearray or memoryview"),
    ],
)
def test_bad_frames_raise_clear_value_errors(
    data: object, rate: int, channels: int, samples: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AudioFrame(data, rate, channels, samples)  # type: ignore[arg-type]


def test_to_wav_bytes_is_a_wav_file_of_the_samples() -> None:
    samples = sine(440, 0.05, 16_000)
    frame = AudioFrame.from_ndarray(samples, 16_000)
    with wave.open(io.BytesIO(frame.to_wav_bytes())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert wav.readframes(wav.getnframes()) == samples.tobytes()


def test_combine_joins_frames_in_order_and_refuses_mixed_formats() -> None:
    a = AudioFrame.from_ndarray(np.arange(10, dtype=np.int16), 48_000)
    b = AudioFrame.from_ndarray(np.arange(10, 30, dtype=np.int16), 48_000)
    combined = combine_audio_frames([a, b])
    assert combined.samples_per_channel == 30
    assert list(combined.data) == list(range(30))
    with pytest.raises(ValueError, match="index 1"):
        combine_audio_frames([a, AudioFrame.create(16_000, 1, 10)])
    with pytest.raises(ValueError, match="at least one"):
        combine_audio_frames([])
    assert combine_audio_frames([], sample_rate=8000, num_channels=1).samples_per_channel == 0


@pytest.mark.parametrize("quality", list(AudioResamplerQuality))
def test_resampler_keeps_the_tone_across_frame_edges(quality: AudioResamplerQuality) -> None:
    tone = sine(440, 1.0, 48_000)
    resampler = AudioResampler(48_000, 16_000, quality=quality)
    out: list[AudioFrame] = []
    for start in range(0, len(tone), 480):  # 10 ms frames
        out += resampler.push(AudioFrame.from_ndarray(tone[start : start + 480], 48_000))
    out += resampler.flush()
    result = combine_audio_frames(out).to_ndarray()[:, 0]
    assert abs(len(result) - 16_000) <= 64
    steady = result[800:-800]
    assert dominant_frequency(steady, 16_000) == pytest.approx(440, abs=2)
    assert snr_db(steady, 16_000, [440]) > 30


def test_remix_and_resample_makes_stereo_at_the_new_rate() -> None:
    frame = AudioFrame.from_ndarray(sine(1000, 0.2, 16_000), 16_000)
    stereo = frame.remix_and_resample(48_000, 2)
    assert (stereo.sample_rate, stereo.num_channels) == (48_000, 2)
    assert abs(stereo.samples_per_channel - 9600) <= 64
    left, right = stereo.to_ndarray()[2000:-2000].T
    assert np.array_equal(left, right)
    assert dominant_frequency(left, 48_000) == pytest.approx(1000, abs=3)


def test_resampler_refuses_frames_of_another_format() -> None:
    resampler = AudioResampler(48_000, 16_000, num_channels=2)
    with pytest.raises(ValueError, match="48000 Hz x 2 channels"):
        resampler.push(AudioFrame.create(48_000, 1, 480))
    with pytest.raises(ValueError, match="multiple of 4 bytes"):
        resampler.push(bytearray(6))
    with pytest.raises(ValueError, match="quality"):
        AudioResampler(48_000, 16_000, quality="best")  # type: ignore[arg-type]
