"""Specification of ansray.metrics: SI-SDR's closed form, the maxima of PESQ and STOI, DNSMOS against the
reference implementation, and NaN-with-a-reason on the edge cases every metric must survive."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from ansray.metrics import (
    DNSMOS,
    METRIC_COLUMNS,
    compute_metrics,
    estoi,
    pesq_nb,
    pesq_wb,
    si_sdr,
    si_sdr_improvement,
    stoi,
)
from ansray.metrics.dnsmos import WINDOW_SAMPLES, dnsmos_windows

SPEECH_CLIP = Path(__file__).parent / "fixtures" / "speech" / "198-209-0000.ogg"
RATE = 16000
# 4.6 s: long enough for PESQ and STOI, and DNSMOS doubles it to a single 9.01 s window.
EXCERPT_SAMPLES = 73600

INTRUSIVE_METRICS = [
    pytest.param(pesq_wb, "pesq", id="pesq_wb"),
    pytest.param(pesq_nb, "pesq", id="pesq_nb"),
    pytest.param(stoi, "pystoi", id="stoi"),
    pytest.param(estoi, "pystoi", id="estoi"),
]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """13.9 s of read English speech, 16 kHz mono (LibriSpeech, CC BY 4.0)."""
    audio, rate = soundfile.read(SPEECH_CLIP, dtype="float64")
    assert rate == RATE and audio.ndim == 1
    return audio


@pytest.fixture(scope="module")
def excerpt(speech) -> np.ndarray:
    return speech[:EXCERPT_SAMPLES]


@pytest.fixture(scope="module")
def dnsmos() -> DNSMOS:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("speechmos")
    return DNSMOS()


def white_noise_at_snr(signal: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(signal))
    return noise * math.sqrt(np.mean(signal**2) / np.mean(noise**2) / 10 ** (snr_db / 10))


def with_orthogonal_noise(reference: np.ndarray, gain: float, snr_db: float) -> np.ndarray:
    """gain * reference plus zero-mean noise orthogonal to it, at `snr_db` below the scaled reference:
    for a zero-mean reference its SI-SDR is exactly snr_db."""
    noise = np.random.default_rng(1).standard_normal(len(reference))
    noise -= noise.mean()
    noise -= np.dot(noise, reference) / np.dot(reference, reference) * reference
    target_energy = gain**2 * np.dot(reference, reference)
    noise *= math.sqrt(target_energy / np.dot(noise, noise) / 10 ** (snr_db / 10))
    return gain * reference + noise


# SI-SDR


def test_si_sdr_of_a_scaled_and_noised_signal_matches_the_closed_form(speech):
    reference = speech - speech.mean()
    estimate = with_orthogonal_noise(reference, gain=0.4, snr_db=7.5)
    assert si_sdr(estimate, reference) == pytest.approx(7.5, abs=1e-9)


def test_si_sdr_ignores_gain_and_a_constant_offset(speech):
    estimate = speech + white_noise_at_snr(speech, 5.0)
    assert si_sdr(3.0 * estimate + 0.1, speech) == pytest.approx(si_sdr(estimate, speech), abs=1e-9)


def test_si_sdr_improvement_is_the_gain_over_the_noisy_input(speech):
    reference = speech - speech.mean()
    noisy = with_orthogonal_noise(reference, gain=1.0, snr_db=2.0)
    estimate = with_orthogonal_noise(reference, gain=0.8, snr_db=14.0)
    assert si_sdr_improvement(estimate, noisy, reference) == pytest.approx(12.0, abs=1e-9)


def test_si_sdr_of_identical_signals_is_infinite(excerpt):
    assert si_sdr(excerpt, excerpt) == math.inf


# PESQ and STOI maxima


def test_pesq_of_identical_signals_reaches_its_maxima(excerpt):
    pytest.importorskip("pesq")
    assert pesq_wb(excerpt, excerpt, RATE) == pytest.approx(4.644, abs=0.005)
    assert pesq_nb(excerpt, excerpt, RATE) == pytest.approx(4.549, abs=0.005)


def test_stoi_and_estoi_of_identical_signals_are_one(excerpt):
    pytest.importorskip("pystoi")
    assert stoi(excerpt, excerpt, RATE) == pytest.approx(1.0, abs=1e-6)
    assert estoi(excerpt, excerpt, RATE) == pytest.approx(1.0, abs=1e-6)


def test_pesq_and_stoi_fall_when_noise_is_added(excerpt):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    noisy = excerpt + white_noise_at_snr(excerpt, 0.0)
    assert pesq_wb(noisy, excerpt, RATE) < 2.0
    assert stoi(noisy, excerpt, RATE) < 0.95


# DNSMOS

# Scores of the speech clip from the reference implementation (speechmos 0.0.1.1, which follows the DNS
# Challenge's dnsmos_local.py, with librosa 0.11): clean, and with white_noise_at_snr(0 dB, seed 0) added
# and peak-normalised to 0.9.
REFERENCE_CLEAN = {"sig": 3.625255, "bak": 3.961734, "ovrl": 3.260844, "p808": 3.755503}
REFERENCE_NOISY_0DB = {"sig": 3.126855, "bak": 1.440908, "ovrl": 1.678048, "p808": 2.187857}


@pytest.fixture(scope="module")
def dnsmos_clean_and_noisy(dnsmos, speech):
    noisy = speech + white_noise_at_snr(speech, 0.0)
    noisy *= 0.9 / np.abs(noisy).max()
    return dnsmos(speech, RATE), dnsmos(noisy, RATE)


def test_dnsmos_scores_clean_speech_above_the_same_speech_with_noise_at_0_db(dnsmos_clean_and_noisy):
    clean, noisy = dnsmos_clean_and_noisy
    assert clean.ovrl > noisy.ovrl + 1.0
    assert clean.bak > noisy.bak + 1.0
    assert clean.sig > noisy.sig
    assert clean.p808 > noisy.p808 + 1.0


def test_dnsmos_matches_the_reference_implementation(dnsmos_clean_and_noisy):
    clean, noisy = dnsmos_clean_and_noisy
    for scores, expected in ((clean, REFERENCE_CLEAN), (noisy, REFERENCE_NOISY_0DB)):
        for name, value in expected.items():
            assert getattr(scores, name) == pytest.approx(value, abs=1e-3), name


def test_dnsmos_windows_start_at_each_whole_second(speech):
    windows = dnsmos_windows(speech)
    # 13.9 s: windows start at 0, 1, 2 and 3 s; a fifth would end after the last whole second.
    assert windows.shape == (4, WINDOW_SAMPLES)
    np.testing.assert_array_equal(windows[3], speech[3 * RATE : 3 * RATE + WINDOW_SAMPLES])


def test_dnsmos_repeats_a_clip_shorter_than_its_window(dnsmos, excerpt):
    doubled = np.concatenate([excerpt, excerpt])
    np.testing.assert_array_equal(dnsmos_windows(excerpt), doubled[None, :WINDOW_SAMPLES])
    assert dnsmos(excerpt, RATE) == dnsmos(doubled, RATE)


# Edge cases every metric survives


@pytest.mark.parametrize("metric, package", INTRUSIVE_METRICS)
def test_intrusive_metric_trims_a_longer_estimate_to_the_reference(metric, package, excerpt):
    pytest.importorskip(package)
    reference = excerpt[: 3 * RATE]
    noisy = excerpt + white_noise_at_snr(excerpt, 5.0)
    assert metric(noisy, reference, RATE) == pytest.approx(metric(noisy[: len(reference)], reference, RATE))
    assert metric(noisy[: len(reference)], excerpt, RATE) == pytest.approx(
        metric(noisy[: len(reference)], reference, RATE)
    )


def test_si_sdr_trims_to_the_shorter_signal(excerpt):
    estimate = excerpt + white_noise_at_snr(excerpt, 5.0)
    assert si_sdr(estimate, excerpt[:RATE]) == pytest.approx(si_sdr(estimate[:RATE], excerpt[:RATE]))


@pytest.mark.parametrize("metric, package", INTRUSIVE_METRICS)
def test_intrusive_metric_of_a_silent_or_empty_reference_is_nan(metric, package, excerpt):
    pytest.importorskip(package)
    assert math.isnan(metric(excerpt, np.zeros_like(excerpt), RATE))
    assert math.isnan(metric(excerpt, np.zeros(0), RATE))


def test_si_sdr_of_a_silent_or_empty_reference_is_nan(excerpt):
    assert math.isnan(si_sdr(excerpt, np.zeros_like(excerpt)))
    assert math.isnan(si_sdr(excerpt, np.zeros(0)))
    assert math.isnan(si_sdr_improvement(excerpt, excerpt, np.zeros_like(excerpt)))


def test_pesq_of_a_silent_estimate_is_nan_not_a_crash(excerpt):
    pytest.importorskip("pesq")
    assert math.isnan(pesq_wb(np.zeros_like(excerpt), excerpt, RATE))


def test_stoi_of_too_little_speech_is_nan(excerpt):
    pytest.importorskip("pystoi")
    assert math.isnan(stoi(excerpt[: RATE // 5], excerpt[: RATE // 5], RATE))


def test_dnsmos_of_silent_or_empty_audio_is_nan_with_a_reason(dnsmos):
    silent = dnsmos(np.zeros(RATE), RATE)
    assert math.isnan(silent.ovrl) and "silent" in silent.reason
    empty = dnsmos(np.zeros(0), RATE)
    assert math.isnan(empty.p808) and "empty" in empty.reason


@pytest.mark.parametrize("metric, package", INTRUSIVE_METRICS)
def test_intrusive_metric_resamples_48_khz_input(metric, package, excerpt):
    pytest.importorskip(package)
    noisy = excerpt + white_noise_at_snr(excerpt, 5.0)
    at_48k = [soxr.resample(signal, RATE, 48000) for signal in (noisy, excerpt)]
    assert metric(*at_48k, 48000) == pytest.approx(metric(noisy, excerpt, RATE), abs=0.05)


def test_si_sdr_is_measured_at_the_signals_own_rate(excerpt):
    reference = soxr.resample(excerpt, RATE, 48000)
    reference -= reference.mean()
    estimate = with_orthogonal_noise(reference, gain=2.0, snr_db=9.0)
    assert si_sdr(estimate, reference) == pytest.approx(9.0, abs=1e-9)


def test_dnsmos_resamples_48_khz_input(dnsmos, excerpt):
    at_48k = soxr.resample(excerpt, RATE, 48000)
    assert dnsmos(at_48k, 48000).ovrl == pytest.approx(dnsmos(excerpt, RATE).ovrl, abs=0.1)


def test_metrics_refuse_several_channels(excerpt):
    stereo = np.stack([excerpt, excerpt])
    with pytest.raises(ValueError, match="mono"):
        si_sdr(stereo, stereo)


# compute_metrics


def test_compute_metrics_gives_every_column_with_its_error_for_enhanced_and_noisy(dnsmos, excerpt):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    noisy = excerpt + white_noise_at_snr(excerpt, 0.0)
    enhanced = excerpt + white_noise_at_snr(excerpt, 15.0)
    row = compute_metrics(enhanced, RATE, reference=excerpt, noisy=noisy, dnsmos=dnsmos)

    columns = [column for metric_columns in METRIC_COLUMNS.values() for column in metric_columns]
    expected = set(columns) | {"noisy_" + column for column in columns} | {"si_sdr_improvement"}
    assert set(row) == expected | {column + "_error" for column in expected}
    assert all(row[column + "_error"] is None for column in expected)
    assert row["si_sdr_improvement"] == pytest.approx(row["si_sdr"] - row["noisy_si_sdr"])
    for column in ("si_sdr", "pesq_wb", "stoi", "dnsmos_ovrl"):
        assert row[column] > row["noisy_" + column], column


def test_compute_metrics_records_why_a_metric_is_nan(excerpt):
    pytest.importorskip("pesq")
    row = compute_metrics(excerpt, RATE, reference=np.zeros_like(excerpt), metrics=("si_sdr", "pesq"))
    for column in ("si_sdr", "pesq_wb", "pesq_nb"):
        assert math.isnan(row[column])
        assert "reference is silent" in row[column + "_error"]


def test_compute_metrics_refuses_reference_metrics_without_a_reference(excerpt):
    with pytest.raises(ValueError, match="reference"):
        compute_metrics(excerpt, RATE, metrics=("si_sdr", "dnsmos"))
    with pytest.raises(ValueError, match="unknown"):
        compute_metrics(excerpt, RATE, reference=excerpt, metrics=("mosnet",))


# The eval extra


def test_metrics_import_without_the_eval_extra_and_name_it_when_needed():
    script = (
        "import sys\n"
        "for name in ('pesq', 'pystoi', 'onnxruntime', 'speechmos'): sys.modules[name] = None\n"
        "import numpy as np\n"
        "from ansray.metrics import pesq_wb, si_sdr\n"
        "x = np.random.default_rng(0).standard_normal(16000)\n"
        "assert si_sdr(x, x) == float('inf')\n"
        "try:\n"
        "    pesq_wb(x, x, 16000)\n"
        "except ImportError as missing:\n"
        "    print(missing)\n"
    )
    repository = Path(__file__).parents[1]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=repository, capture_output=True, text=True, check=True
    )
    assert 'pip install "ansray[eval]"' in result.stdout


def test_dnsmos_max_windows_scores_evenly_spread_windows_of_long_clips(dnsmos, speech):
    long_clip = np.concatenate([speech, speech[::-1], 0.5 * speech])  # 41.7 s: 32 reference windows
    windows = dnsmos_windows(long_clip)
    assert len(windows) == 32
    bounded = dnsmos(long_clip, RATE, max_windows=3)
    assert bounded == dnsmos.score_windows(windows[[0, 16, 31]])
    assert dnsmos(speech, RATE, max_windows=60) == dnsmos(speech, RATE)
