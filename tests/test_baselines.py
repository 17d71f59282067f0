"""Specification of ansray.baselines: RNNoise's delay, measured on its library with impulses and by
cross-correlation on speech, and a wrapper whose output has the input's length, timing, polarity and
level at any rate."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy import signal as scipy_signal

from ansray.baselines import BASELINES
from ansray.baselines.rnnoise import RNNOISE_DELAY, RNNOISE_SAMPLE_RATE, rnnoise_denoise, run_rnnoise
from ansray.io import resample
from ansray.metrics import si_sdr

SPEECH_CLIP = Path(__file__).parent / "fixtures" / "speech" / "198-209-0000.ogg"


def noisy_speech(rate: int, seconds: float = 6.0, snr_db: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(clean, clean + white noise at `snr_db`), real speech at `rate`, float32."""
    speech, speech_rate = soundfile.read(SPEECH_CLIP, dtype="float32")
    clean = resample(speech[: int(seconds * speech_rate)], speech_rate, rate)
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2)) * 10 ** (-snr_db / 20)
    return clean, clean + noise


def lag_of(later: np.ndarray, earlier: np.ndarray) -> int:
    """The shift in samples that best aligns `later` with `earlier`, by cross-correlation."""
    correlation = scipy_signal.correlate(later, earlier, mode="full", method="fft")
    return int(scipy_signal.correlation_lags(len(later), len(earlier))[np.argmax(correlation)])


def test_rnnoise_is_the_rnnoise_baseline():
    assert BASELINES["rnnoise"] is rnnoise_denoise


@pytest.mark.parametrize("position", [9600, 10000, 10479, 30001])  # at every phase within a 480-sample frame
def test_rnnoise_library_answers_an_impulse_960_samples_later(position):
    impulse = np.zeros(RNNOISE_SAMPLE_RATE, dtype=np.float32)
    impulse[position] = 0.5
    response = run_rnnoise(impulse)
    assert len(response) == len(impulse)
    assert int(np.argmax(np.abs(response))) - position == RNNOISE_DELAY == 960


def test_rnnoise_library_lags_speech_by_its_delay():
    _, noisy = noisy_speech(RNNOISE_SAMPLE_RATE)
    assert lag_of(run_rnnoise(noisy), noisy) == RNNOISE_DELAY


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_rnnoise_output_is_aligned_with_its_input_at_its_level(rate):
    clean, noisy = noisy_speech(rate)
    denoised = rnnoise_denoise(noisy, rate)

    assert denoised.dtype == np.float32 and denoised.shape == noisy.shape
    assert abs(lag_of(denoised, clean)) <= 1
    # Polarity and level, which SI-SDR is blind to: the projection onto the clean speech is positive
    # and close to 1, and the level is within 1.5 dB of the clean speech's.
    gain = float(np.dot(denoised, clean) / np.dot(clean, clean))
    assert 0.85 < gain < 1.05, gain
    level_db = 10 * np.log10(np.mean(denoised**2) / np.mean(clean**2))
    assert abs(level_db) < 1.5, level_db
    # It denoises: a delay left uncompensated would cost far more than this gain.
    assert si_sdr(denoised, clean) > si_sdr(noisy, clean) + 2.0


def test_rnnoise_refuses_several_channels():
    with pytest.raises(ValueError, match="mono"):
        rnnoise_denoise(np.zeros((100, 2), dtype=np.float32), 16000)
