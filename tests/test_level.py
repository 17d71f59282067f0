"""Specification of ansray.level: ModelScope's audio_norm gain, measured in windows."""

import numpy as np

from ansray.level import level_gains


def test_level_gain_matches_modelscope_audio_norm():
    x = np.random.default_rng(1).standard_normal(48000) * np.linspace(0.01, 0.3, 48000)
    # ModelScope's audio_norm, written out: two successive scalings.
    y = x * (10 ** (-25 / 20) / np.sqrt(np.mean(x**2)))
    power = y**2
    y = y * (10 ** (-25 / 20) / np.sqrt(power[power > power.mean()].mean()))
    np.testing.assert_allclose(x[:, None] * level_gains(x[:, None].astype(np.float32)), y[:, None], rtol=1e-4)


def test_level_gain_measured_in_windows_equals_the_whole_signal_at_once():
    x = (np.random.default_rng(2).standard_normal((48001, 2)) * np.linspace(0.01, 0.3, 48001)[:, None]).astype(np.float32)
    np.testing.assert_allclose(level_gains(x, window=1000), level_gains(x, window=len(x)), rtol=1e-6)


def test_silent_channel_keeps_unit_gain():
    assert level_gains(np.zeros((1000, 1), np.float32))[0] == 1.0
