"""Noise generators for starter corpora: length, level, and the acoustics each kind stands for."""

import numpy as np
import pytest

from ansray.data.noises import (
    NOISE_KINDS,
    babble,
    engine_noise,
    keyboard_clicks,
    mains_hum,
    make_noise,
    music,
    pink_noise,
    traffic,
    white_noise,
)

SR = 16000


def tone(frequency, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


TONE_FREQUENCIES = (300.0, 410.0, 530.0, 670.0, 790.0, 920.0, 1070.0, 1230.0)
UTTERANCES = [tone(f) for f in TONE_FREQUENCIES]


def power_spectrum(x):
    return np.abs(np.fft.rfft(x.astype(np.float64))) ** 2, np.fft.rfftfreq(len(x), 1 / SR)


def band_share(x, low, high):
    power, freqs = power_spectrum(x)
    return power[(freqs >= low) & (freqs < high)].sum() / power.sum()


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_every_kind_has_the_requested_length_a_half_peak_and_a_sensible_level(kind):
    noise = make_noise(kind, np.random.default_rng(0), 2.5, SR, UTTERANCES)
    assert noise.dtype == np.float32 and noise.shape == (int(2.5 * SR),)
    assert np.isfinite(noise).all()
    assert np.max(np.abs(noise)) == pytest.approx(0.5, abs=1e-6)
    rms_db = 20 * np.log10(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    assert -50.0 < rms_db < -6.0


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_the_same_seed_gives_the_same_clip_and_another_seed_another(kind):
    first = make_noise(kind, np.random.default_rng(5), 1.5, SR, UTTERANCES)
    again = make_noise(kind, np.random.default_rng(5), 1.5, SR, UTTERANCES)
    other = make_noise(kind, np.random.default_rng(6), 1.5, SR, UTTERANCES)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("seed", range(4))
def test_hum_has_its_energy_at_50_or_60_hz_and_their_harmonics(seed):
    hum = mains_hum(np.random.default_rng(seed), 4.0, SR)
    power, freqs = power_spectrum(hum)
    shares = {}
    for mains in (50.0, 60.0):
        near_harmonic = np.abs(freqs - mains * np.round(freqs / mains)) < 2.0
        shares[mains] = power[near_harmonic & (freqs > 25.0)].sum() / power.sum()
    assert max(shares.values()) > 0.95
    # Harmonics of a 50 Hz hum sit between those of 60 Hz, so only one of the two can explain it.
    assert min(shares.values()) < 0.6


@pytest.mark.parametrize("seed", range(3))
def test_traffic_is_dominated_by_low_frequencies(seed):
    assert band_share(traffic(np.random.default_rng(seed), 6.0, SR), 0, 1000) > 0.7


def test_engine_rumble_is_dominated_by_low_frequencies():
    assert band_share(engine_noise(np.random.default_rng(1), 3.0, SR), 0, 1000) > 0.6


def test_white_noise_is_flat_and_pink_noise_falls_with_frequency():
    white = white_noise(np.random.default_rng(2), 4.0, SR)
    pink = pink_noise(np.random.default_rng(2), 4.0, SR)
    # Per hertz, 500-1000 Hz against 4-8 kHz: equal for white; 1/f puts ~8x more power low.
    white_ratio = band_share(white, 500, 1000) / 500 / (band_share(white, 4000, 8000) / 4000)
    pink_ratio = band_share(pink, 500, 1000) / 500 / (band_share(pink, 4000, 8000) / 4000)
    assert 0.8 < white_ratio < 1.25
    assert pink_ratio > 3.0


def test_keyboard_clicks_are_brief_impulses_separated_by_quiet():
    clicks = keyboard_clicks(np.random.default_rng(3), 5.0, SR).astype(np.float64)
    frames = clicks[: len(clicks) // 160 * 160].reshape(-1, 160)
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = level_db > level_db.max() - 20
    assert 0.01 < loud.mean() < 0.3  # some keystrokes, mostly quiet between them
    crest_db = 20 * np.log10(np.max(np.abs(clicks)) / np.sqrt(np.mean(clicks**2)))
    assert crest_db > 20


def test_music_has_a_peaky_spectrum_unlike_noise():
    def flatness(x):
        power, _ = power_spectrum(x)
        power = power[1:] + 1e-20
        return np.exp(np.mean(np.log(power))) / np.mean(power)

    assert flatness(music(np.random.default_rng(4), 4.0, SR)) < 0.1 * flatness(white_noise(np.random.default_rng(4), 4.0, SR))


def tones_present(x):
    """How many of TONE_FREQUENCIES carry at least 2 % of the power of `x`."""
    power, freqs = power_spectrum(x)
    return sum(power[np.abs(freqs - f) < 5.0].sum() / power.sum() > 0.02 for f in TONE_FREQUENCIES)


def test_babble_is_several_talkers_speaking_at_once():
    many = babble(np.random.default_rng(7), 3.0, SR, UTTERANCES, talkers=6)
    one = babble(np.random.default_rng(7), 3.0, SR, UTTERANCES, talkers=1)
    window = slice(SR, SR + SR // 2)  # half a second: a single talker says one "word" in it
    assert tones_present(many[window]) >= 3
    assert tones_present(one[window]) <= 2


def test_babble_without_utterances_is_an_error():
    with pytest.raises(ValueError, match="utterance"):
        babble(np.random.default_rng(0), 1.0, SR, [])


def test_an_unknown_kind_is_an_error_that_lists_the_known_ones():
    with pytest.raises(ValueError, match="babble"):
        make_noise("thunder", np.random.default_rng(0), 1.0, SR)
