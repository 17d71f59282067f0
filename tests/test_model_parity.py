"""FRCRN reproduces the reference implementation's numbers (tests/fixtures/frcrn-reference)."""

import numpy as np
import pytest
import torch

from ansray.model import FRCRN, FRCRNInference, frcrn_loss
from ansray.testing.parity_fixture import canonical_state_dict, cases, reference_losses

CASES = (1, 2, 3)
TOLERANCE = 1e-4  # times max|reference|, from the fixture's README


@pytest.fixture(scope="module")
def model():
    model = FRCRN().eval()
    model.load_state_dict(canonical_state_dict(), strict=True)
    return model


@pytest.fixture(scope="module")
def fixture_cases():
    return cases()


def assert_close_to_reference(got: torch.Tensor, reference: np.ndarray, name: str):
    assert got.shape == reference.shape, name
    error = np.abs(got.detach().numpy() - reference).max()
    assert error <= TOLERANCE * np.abs(reference).max(), f"{name}: max error {error}"


@pytest.mark.parametrize("case", CASES)
def test_training_path_matches_reference(model, fixture_cases, case):
    with torch.no_grad():
        out = model(torch.from_numpy(fixture_cases[f"case{case}_input"]))
    for name in ("wav_l1", "wav_l2", "mask_l2", "spec_l2"):
        assert_close_to_reference(getattr(out, name), fixture_cases[f"case{case}_{name}"], f"case{case} {name}")


@pytest.mark.parametrize("case", CASES)
def test_inference_path_matches_reference(model, fixture_cases, case):
    fused = FRCRNInference.from_model(model)
    assert fused.fft is not None, "the released STFT kernels must select the FFT path"
    with torch.inference_mode():
        out = fused(torch.from_numpy(fixture_cases[f"case{case}_input"]), stage1=True)
    assert_close_to_reference(out.wav_l1, fixture_cases[f"case{case}_wav_l1"], f"case{case} wav_l1")
    assert_close_to_reference(out.wav, fixture_cases[f"case{case}_wav_l2"], f"case{case} wav_l2")
    assert_close_to_reference(out.mask, fixture_cases[f"case{case}_mask_l2"], f"case{case} mask_l2")


def test_inference_path_skips_stage_one_waveform_by_default(model, fixture_cases):
    with torch.inference_mode():
        out = FRCRNInference.from_model(model)(torch.from_numpy(fixture_cases["case1_input"]))
    assert out.wav_l1 is None


def test_losses_match_reference(fixture_cases):
    model = FRCRN().train()
    model.load_state_dict(canonical_state_dict(), strict=True)
    noisy = torch.from_numpy(fixture_cases["case2_input"])
    clean = torch.from_numpy(fixture_cases["clean_case2"])
    out = model(noisy)
    expected = reference_losses()
    mix = frcrn_loss(out, noisy, clean, mode="Mix")
    sisnr = frcrn_loss(out, noisy, clean, mode="SiSNR")
    for got, want in (
        (mix["loss"], expected["mix_total"]),
        (mix["amp_loss"], expected["mix_amp"]),
        (mix["phase_loss"], expected["mix_phase"]),
        (mix["sisnr"], expected["sisnr"]),
        (sisnr["sisnr"], expected["sisnr"]),
    ):
        assert abs(got.item() - want) <= 1e-4 * abs(want), (got.item(), want)
    # ansray's SiSNR mode adds a gain term to the reference's -SI-SNR (which is blind to sign and scale).
    assert sisnr["loss"].item() == pytest.approx((sisnr["sisnr"] + sisnr["gain_loss"]).item(), rel=1e-6)


def test_loss_backpropagates_only_through_stage_two_terms(fixture_cases):
    model = FRCRN().train()
    model.load_state_dict(canonical_state_dict(), strict=True)
    noisy = torch.from_numpy(fixture_cases["case1_input"])
    out = model(noisy)
    frcrn_loss(out, noisy, noisy * 0.5)["loss"].backward()
    assert model.unet2.decoder6.transconv.tconv_re.weight.grad.abs().sum() > 0
    # Unused reference blocks receive no gradient.
    assert model.unet.fsmn_enc0.fsmn_re_L1.linear.weight.grad is None


def test_unknown_loss_mode_is_refused(fixture_cases, model):
    noisy = torch.from_numpy(fixture_cases["case1_input"])
    with torch.no_grad():
        out = model(noisy)
    with pytest.raises(ValueError, match="loss mode"):
        frcrn_loss(out, noisy, noisy, mode="L1")
