"""The fused inference path computes what the reference network computes, on every route it takes.

tests/test_model_parity.py checks the released configuration in float32 against the fixture; these
run in float64, where what is left is the order of additions and the STFT constants (float32 in
both, rounded differently: ~1e-8), so any structural slip (a wrong tap, phase, chunk boundary or
channel order) shows up far above the tolerance.
"""

import numpy as np
import pytest
import torch

from ansray.model import FRCRN, MODEL_SIZES, FRCRNInference
from ansray.model.fused import FSMN_CHUNK_ROWS, ComplexFsmn

TOLERANCE = 1e-6  # times max|reference|, float64


def random_model(size: str, seed: int = 0) -> FRCRN:
    """A float64 model with random weights and BatchNorm statistics, so that the folding matters."""
    torch.manual_seed(seed)
    model = FRCRN(MODEL_SIZES[size]).double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1, 0.1)
                module.bias.normal_(0, 0.1)
    return model


def noise(batch: int, samples: int, seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, samples)) * 0.1)


def assert_matches(got: torch.Tensor, want: torch.Tensor):
    assert got.shape == want.shape
    assert (got - want).abs().max() <= TOLERANCE * want.abs().max()


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_narrow_and_shallow_models_match_the_reference_network(size):
    model = random_model(size)
    wav = noise(2, 16000 + 123)  # not a whole number of hops
    with torch.no_grad():
        want = model(wav)
        got = FRCRNInference.from_model(model)(wav, stage1=True)
    assert_matches(got.wav, want.wav_l2)
    assert_matches(got.mask, want.mask_l2)
    assert_matches(got.wav_l1, want.wav_l1)


def test_fsmn_steps_cut_only_between_whole_sequences(monkeypatch):
    model = random_model("tiny")
    fused = FRCRNInference.from_model(model)
    wav = noise(3, 12800)
    with torch.no_grad():
        whole = fused(wav).wav
        monkeypatch.setitem(FSMN_CHUNK_ROWS, "cpu", 7)  # fewer rows than one sequence
        stepped = fused(wav).wav
        one_by_one = torch.cat([fused(wav[i : i + 1]).wav for i in range(3)])
    assert_matches(stepped, whole)
    assert_matches(one_by_one, whole)


def test_checkpoints_with_other_stft_kernels_keep_their_own_stft():
    model = random_model("tiny")
    with torch.no_grad():
        model.stft.weight.mul_(1.01)
        model.istft.weight.mul_(0.99)
        fused = FRCRNInference.from_model(model)
        assert fused.fft is None
        wav = noise(1, 9600)
        assert_matches(fused(wav).wav, model(wav).wav_l2)


def test_autocast_runs_the_unets_in_its_dtype_and_returns_float32():
    model = FRCRN(MODEL_SIZES["tiny"]).eval()
    fused = FRCRNInference.from_model(model)
    wav = noise(1, 9600).float()
    with torch.inference_mode():
        full = fused(wav).wav
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fused(wav).wav
    assert low.dtype == torch.float32
    assert all(p.dtype == torch.bfloat16 for p in fused.unets(torch.bfloat16)[0].parameters())
    error = (low - full).norm() / full.norm()
    assert 0 < error < 0.1


def test_bfloat16_output_is_finite_and_repeatable_whatever_the_heap_held():
    """The tiny model's last encoder spans its input's 17 rows; a strided CPU bfloat16 conv with a
    one-row output read uninitialised memory (NaN on some calls, after a freed NaN buffer)."""
    torch.manual_seed(1)
    fused = FRCRNInference.from_model(FRCRN(MODEL_SIZES["tiny"]).eval())
    wav = noise(1, 9600).float()
    outputs = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):
            del_me = torch.full((1000, 1000), float("nan"), dtype=torch.bfloat16)
            del del_me
            outputs.append(fused(wav).wav)
    assert all(torch.isfinite(out).all() for out in outputs)
    assert all(torch.equal(out, outputs[0]) for out in outputs)


def test_fsmn_written_in_place_equals_a_fresh_output(monkeypatch):
    model = random_model("tiny")
    layer = model.unet.fsmn_enc1
    fsmn = ComplexFsmn(layer.fsmn_re_L1, layer.fsmn_im_L1, along_time=False)
    stacked = torch.randn(2, 2 * fsmn.w1.shape[0], 5, 9, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    real, imag = stacked.chunk(2, dim=1)  # channel halves of one buffer, as the encoders give them
    monkeypatch.setitem(FSMN_CHUNK_ROWS, "cpu", 20)  # several steps, so later ones read after earlier writes
    with torch.no_grad():
        fresh = fsmn(real, imag)
        fsmn(real, imag, out=(real, imag))
    assert torch.equal(real, fresh[0]) and torch.equal(imag, fresh[1])
