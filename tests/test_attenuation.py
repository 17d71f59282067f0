"""Specification of the attenuation limit and of the polarity a model must keep."""

import numpy as np
import pytest
import soxr
import torch

import ansray
from ansray.attenuation import dry_share, gain_db, limit_attenuation, output_gain
from ansray.model import MODEL_SIZES, CheckpointError
from ansray.model.polarity import check_polarity, probe_gain
from models import constant_mask_model, tiny_model


def level_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def test_the_dry_share_is_ten_to_the_minus_limit_over_twenty():
    assert dry_share(None) == 0.0 and dry_share(0) == 1.0
    assert dry_share(20) == pytest.approx(0.1) and dry_share(6) == pytest.approx(0.501, abs=1e-3)
    with pytest.raises(ValueError, match=">= 0 dB"):
        dry_share(-3)
    enhanced, original = np.zeros(4, np.float32), np.ones(4, np.float32)
    np.testing.assert_allclose(limit_attenuation(enhanced, original, 20), 0.1)
    assert limit_attenuation(enhanced, original, None) is enhanced


@pytest.mark.parametrize("limit", [6, 12, 18, 24])
def test_noise_is_attenuated_by_at_most_the_limit(limit):
    """A model that attenuates noise by 40 dB (mask 0.01), on pure noise: with a limit the residual is
    g + 0.01 (1 - g) of the noise, so noise loses at most `limit` dB, and about that much."""
    noise = (0.1 * np.random.default_rng(1).standard_normal(16000 * 3)).astype(np.float32)
    model = constant_mask_model(0.01)
    full = ansray.enhance(noise, 16000, model)
    limited = ansray.enhance(noise, 16000, model, attenuation_limit=limit)
    assert level_db(full) - level_db(noise) == pytest.approx(-40, abs=0.1)
    residual = level_db(limited) - level_db(noise)
    g = 10 ** (-limit / 20)
    assert residual >= -limit
    assert residual == pytest.approx(20 * np.log10(g + 0.01 * (1 - g)), abs=0.05)


def test_the_dry_part_keeps_the_band_above_8_khz_that_the_16_khz_model_cannot_make():
    rate = 48000
    noise = (0.1 * np.random.default_rng(2).standard_normal(rate * 2)).astype(np.float32)
    limited = ansray.enhance(noise, rate, constant_mask_model(0.01), attenuation_limit=12)
    high = lambda x: x - soxr.resample(soxr.resample(x, rate, 16000, "VHQ"), 16000, rate, "VHQ")[: len(x)]
    assert level_db(high(limited)) - level_db(high(noise)) == pytest.approx(-12, abs=0.3)


def test_output_gain_is_the_least_squares_projection_with_its_sign():
    assert output_gain(-2.0, 4.0) == -0.5 and output_gain(1.0, 0.0) is None
    assert gain_db(0.5) == pytest.approx(-6.02, abs=0.01) and gain_db(-0.5) == gain_db(0.5) and gain_db(0.0) is None


def test_a_model_that_inverts_its_output_is_refused_and_one_that_keeps_it_is_not():
    assert probe_gain(constant_mask_model(0.5)) == pytest.approx(0.5, abs=0.01)
    assert check_polarity(tiny_model(), "tiny") > 0
    torch.manual_seed(0)
    untrained = ansray.FRCRN(MODEL_SIZES["tiny"]).eval()  # a random FRCRN's mask leans negative
    for inverted in (constant_mask_model(-0.5), untrained):
        with pytest.raises(CheckpointError, match="anti-correlated with its input .* inverts polarity"):
            check_polarity(inverted, "inverted")
    with pytest.raises(CheckpointError, match="anti-correlated"):
        ansray.enhance(np.ones(1600, np.float32), 16000, constant_mask_model(-0.5), attenuation_limit=6)
