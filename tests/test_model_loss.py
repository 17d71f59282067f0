"""Every loss mode sees the output's sign and scale: inverting or rescaling a good output costs more."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ansray.model import MODEL_SIZES, FRCRNOutput, frcrn_loss
from ansray.model.loss import (LOSS_MODES, SPECTRAL_COMPLEX_WEIGHT, SPECTRAL_POWER, compressed_spectral_snr,
                               ideal_cirm, projection_gain, residual_noise_level, si_snr, snr)

CONFIG = MODEL_SIZES["tiny"]
SPEECH = Path(__file__).resolve().parent / "fixtures" / "speech" / "198-209-0000.ogg"


@pytest.fixture(scope="module")
def pair():
    """(noisy, clean) [2, 16000]: two seconds of real speech in two rows, with pink-ish noise at 5 dB."""
    speech, _ = sf.read(SPEECH, dtype="float32")
    clean = torch.from_numpy(np.stack([speech[16000:32000], speech[32000:48000]]))
    noise = torch.cumsum(torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)), -1)
    noise = noise - noise.mean(-1, keepdim=True)
    noise *= clean.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True) * 10 ** (-5 / 20)
    return clean + noise, clean


def good_output(noisy, clean, factor: float = 1.0) -> FRCRNOutput:
    """An output near the clean speech (the ideal mask, slightly off), times `factor`: waveform and
    mask together, as the network's own output would change."""
    generator = torch.Generator().manual_seed(1)
    wav = clean + 0.05 * torch.randn(clean.shape, generator=generator) * clean.std()
    mask = ideal_cirm(noisy, clean, CONFIG)
    mask = mask + 0.05 * torch.randn(mask.shape, generator=generator)
    unused = torch.zeros(0)
    return FRCRNOutput(unused, unused, unused, unused, factor * wav, factor * mask)


@pytest.mark.parametrize("mode", LOSS_MODES)
@pytest.mark.parametrize("factor", [-1.0, 2.0, 0.5])
def test_inverting_or_rescaling_a_good_output_raises_the_loss(pair, mode, factor):
    noisy, clean = pair
    faithful = frcrn_loss(good_output(noisy, clean), noisy, clean, mode=mode, config=CONFIG)["loss"]
    changed = frcrn_loss(good_output(noisy, clean, factor), noisy, clean, mode=mode, config=CONFIG)["loss"]
    assert changed > faithful + 0.5, (mode, factor, faithful.item(), changed.item())


def test_si_snr_alone_is_blind_to_sign_and_scale_so_the_gain_term_carries_them(pair):
    noisy, clean = pair
    faithful = frcrn_loss(good_output(noisy, clean), noisy, clean, mode="SiSNR", config=CONFIG)
    for factor in (-1.0, 3.0):
        changed = frcrn_loss(good_output(noisy, clean, factor), noisy, clean, mode="SiSNR", config=CONFIG)
        assert changed["sisnr"].item() == pytest.approx(faithful["sisnr"].item(), abs=1e-4)
        assert changed["gain_loss"] > faithful["gain_loss"] + 1.0


def test_gain_and_snr_of_known_signals(pair):
    _, clean = pair
    assert projection_gain(-2 * clean, clean).tolist() == pytest.approx([-2.0, -2.0], rel=1e-5)
    orthogonal = torch.stack([clean[1], -clean[0]]) - projection_gain(torch.stack([clean[1], -clean[0]]), clean)[:, None] * clean
    assert projection_gain(clean + orthogonal, clean).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    # Half the amplitude: the error is half the signal, 6 dB; SI-SNR does not see it.
    assert snr(0.5 * clean, clean).item() == pytest.approx(20 * np.log10(2), abs=1e-3)
    assert si_snr(0.5 * clean, clean).item() > 60


def test_compressed_spectral_snr_of_known_signals(pair):
    noisy, clean = pair
    assert compressed_spectral_snr(clean, clean, CONFIG).item() > 60
    # Inverted: magnitudes agree, complex values differ by twice the target, so D = 4 w E.
    inverted = compressed_spectral_snr(-clean, clean, CONFIG).item()
    assert inverted == pytest.approx(-10 * np.log10(4 * SPECTRAL_COMPLEX_WEIGHT), abs=0.01)
    # The ratio does not depend on the level both signals share.
    at_level = compressed_spectral_snr(noisy, clean, CONFIG).item()
    assert compressed_spectral_snr(0.01 * noisy, 0.01 * clean, CONFIG).item() == pytest.approx(at_level, abs=0.01)


def test_compression_weighs_noise_in_quiet_regions_more_than_the_waveform_snr(pair):
    """The same white noise, once spread evenly and once only where the speech is loud: equal waveform
    SNR, but the compressed spectra see the noise in the quiet parts as far worse."""
    _, clean = pair
    generator = torch.Generator().manual_seed(2)
    noise = torch.randn(clean.shape, generator=generator)
    envelope = torch.nn.functional.avg_pool1d(clean.abs().unsqueeze(1), 801, stride=1, padding=400).squeeze(1)
    loud = (envelope > envelope.median(-1, keepdim=True).values).float()
    even, masked = noise, noise * loud
    for n in (even, masked):
        n *= clean.norm(dim=-1, keepdim=True) / n.norm(dim=-1, keepdim=True) * 10 ** (-10 / 20)
    assert snr(clean + even, clean).item() == pytest.approx(snr(clean + masked, clean).item(), abs=1e-3)
    spread = compressed_spectral_snr(clean + even, clean, CONFIG).item()
    confined = compressed_spectral_snr(clean + masked, clean, CONFIG).item()
    assert confined > spread + 1.0, (spread, confined)


def test_residual_noise_level_is_the_noise_the_mask_lets_through(pair):
    noisy, clean = pair
    frames = ideal_cirm(noisy, clean, CONFIG).shape[-1]
    bins = CONFIG.freq_bins
    unit = torch.cat([torch.ones(2, bins, frames), torch.zeros(2, bins, frames)], dim=1)
    passed = residual_noise_level(unit, noisy, clean, CONFIG).item()
    # An all-pass mask lets the whole noise through: twice the noise, 0.5^-(2c) times the compressed power.
    louder = residual_noise_level(unit, clean + 2 * (noisy - clean), clean, CONFIG).item()
    assert louder - passed == pytest.approx(20 * SPECTRAL_POWER * np.log10(2), abs=0.01)
    # Halving the mask lowers the compressed power by 0.5^(2c) on every bin.
    halved = residual_noise_level(0.5 * unit, noisy, clean, CONFIG).item()
    assert halved - passed == pytest.approx(20 * SPECTRAL_POWER * np.log10(0.5), abs=0.01)
    # The ideal mask passes some noise (it maps noisy onto clean, noise included), but less than all of it.
    assert residual_noise_level(ideal_cirm(noisy, clean, CONFIG), noisy, clean, CONFIG).item() < passed - 1
    # Rotating the mask by a phase changes what passes, not how much.
    rotated = torch.cat([unit[:, bins:], unit[:, :bins]], dim=1)  # the mask j: a quarter turn
    assert residual_noise_level(rotated, noisy, clean, CONFIG).item() == pytest.approx(passed, abs=1e-3)
