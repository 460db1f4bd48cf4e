"""Test signals and their measurement: sines in, frequency and SNR out (shared by the audio tests)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def sine(
    frequency: float, seconds: float, sample_rate: int = 48_000, amplitude: float = 0.3, start: int = 0
) -> npt.NDArray[np.int16]:
    """A sine as int16 samples, starting at sample ``start`` of an endless tone."""
    count = round(seconds * sample_rate)
    t = (np.arange(count) + start) / sample_rate
    return (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def dominant_frequency(samples: npt.NDArray[np.int16], sample_rate: int) -> float:
    """The frequency of the strongest spectral peak, refined by parabolic interpolation."""
    data = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(data))
    peak = int(np.argmax(spectrum[1:])) + 1
    if 1 <= peak < len(spectrum) - 1:
        a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        peak_f = peak + 0.5 * (a - c) / (a - 2 * b + c)
    else:
        peak_f = float(peak)
    return float(peak_f * sample_rate / len(samples))


def snr_db(samples: npt.NDArray[np.int16], sample_rate: int, frequencies: list[float]) -> float:
    """Signal-to-noise ratio of ``samples`` against the best-fitting sum of sines at ``frequencies``.

    The fit (least squares over a sine and a cosine per frequency, plus DC) absorbs any
    phase and gain change of the codec; what it cannot explain is noise.
    """
    data = samples.astype(np.float64)
    t = np.arange(len(data)) / sample_rate
    columns = [np.ones_like(t)]
    for frequency in frequencies:
        columns += [np.sin(2 * np.pi * frequency * t), np.cos(2 * np.pi * frequency * t)]
    basis = np.stack(columns, axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, data, rcond=None)
    fitted = basis @ coefficients
    noise = data - fitted
    signal_power = float(np.mean((fitted - coefficients[0]) ** 2))
    noise_power = float(np.mean(noise**2)) or 1e-12
    return 10.0 * float(np.log10(signal_power / noise_power))
