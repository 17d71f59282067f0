"""Every loss mode sees the output's sign and scale: inverting or rescaling a good output costs more."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ansray.model import MODEL_SIZES, FRCRNOutput, frcrn_loss
from ansray.model.loss import LOSS_MODES, ideal_cirm, projection_gain, si_snr, snr

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
