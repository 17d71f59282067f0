"""Synthetic room impulse responses and the T60 estimate used to filter RIR corpora."""

import numpy as np
import pytest

from ansray.data.rir import estimate_t60, synthetic_rir


@pytest.mark.parametrize("t60", [0.3, 0.7, 1.3])
def test_estimated_t60_of_a_synthetic_rir_is_within_ten_percent(t60):
    rir = synthetic_rir(np.random.default_rng(1), t60)
    assert abs(estimate_t60(rir) - t60) < 0.1 * t60


def test_direct_path_is_the_peak_of_a_synthetic_rir():
    rir = synthetic_rir(np.random.default_rng(2), 0.5, direct_delay=0.004)
    assert int(np.argmax(np.abs(rir))) == 64 and rir[64] == 1.0


def test_t60_of_a_response_that_never_decays_is_nan():
    assert np.isnan(estimate_t60(np.ones(100)))
