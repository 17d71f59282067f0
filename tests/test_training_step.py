"""The training step: reference losses on the parity fixture, skipped non-finite steps, frozen dead
blocks, mixed precision."""

import pytest
import torch

from ansray.model import FRCRN, MODEL_SIZES, frcrn_loss
from ansray.model.loss import LOSS_MODES
from ansray.training.step import StepSettings, freeze_unused_parameters, train_step, unused_parameters
from ansray.testing.parity_fixture import canonical_state_dict, cases, reference_losses

TINY = MODEL_SIZES["tiny"]


def tiny_model() -> FRCRN:
    torch.manual_seed(0)
    return FRCRN(TINY)


def batch(seed: int = 0, size: int = 2, samples: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    clean = 0.1 * torch.randn(size, samples, generator=generator)
    return clean + 0.05 * torch.randn(size, samples, generator=generator), clean


def test_one_training_step_reproduces_reference_losses():
    model = FRCRN()
    model.load_state_dict(canonical_state_dict(), strict=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    fixture = cases()
    noisy, clean = torch.from_numpy(fixture["case2_input"]), torch.from_numpy(fixture["clean_case2"])
    before = model.unet2.decoder0.transconv.tconv_re.weight.detach().clone()

    result = train_step(model, optimizer, noisy, clean, StepSettings(loss_mode="Mix"))

    expected = reference_losses()
    for got, want in ((result.loss, expected["mix_total"]), (result.amp_loss, expected["mix_amp"]),
                      (result.phase_loss, expected["mix_phase"]), (result.sisnr, expected["sisnr"])):
        assert abs(got - want) <= 1e-4 * abs(want), (got, want)
    assert not result.skipped and model.training
    assert not torch.equal(model.unet2.decoder0.transconv.tconv_re.weight, before)


def test_non_finite_loss_skips_the_update_and_is_reported():
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    noisy, clean = batch()
    train_step(model, optimizer, noisy, clean)  # gives Adam its moments
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in optimizer.state.values()]

    noisy[0, 100] = float("nan")
    result = train_step(model, optimizer, noisy, clean)

    assert result.skipped
    assert not torch.isfinite(torch.tensor(result.loss))
    params = dict(model.named_parameters())
    for key, value in weights.items():
        if key in params:
            assert torch.equal(params[key], value), key
    assert all(torch.equal(s["exp_avg"], m) for s, m in zip(optimizer.state.values(), moments))
    assert all(p.grad is None for p in model.parameters())


def test_gradient_clipping_bounds_the_update_norm():
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    noisy, clean = batch()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    result = train_step(model, optimizer, noisy, clean, StepSettings(clip_grad_norm=0.5))
    step = torch.sqrt(sum(((p.detach() - before[k]) ** 2).sum() for k, p in model.named_parameters()))
    assert result.grad_norm > 0.5
    assert step.item() == pytest.approx(0.5, rel=1e-3)


def test_blocks_the_reference_never_uses_are_frozen():
    model = tiny_model()
    unused = unused_parameters(model)
    levels = model.unet.levels
    for unet in ("unet", "unet2"):
        assert f"{unet}.fsmn_enc0.fsmn_re_L1.linear.weight" in unused
        assert f"{unet}.fsmn_dec{levels - 1}.fsmn_re_L1.linear.weight" in unused
        assert f"{unet}.se_layer_enc{levels - 1}.fc_r.0.weight" in unused
        assert f"{unet}.encoder0.conv.conv_re.weight" not in unused
    frozen = freeze_unused_parameters(model)
    assert frozen == sorted(unused)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    train_step(model, optimizer, *batch())
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("mode", LOSS_MODES)
def test_the_layouts_unused_blocks_are_exactly_those_without_a_gradient(mode):
    """The layout's account of what runs, checked against autograd: a backward pass of every loss
    leaves exactly the layout's unused parameters without a gradient."""
    model = tiny_model()
    noisy, clean = batch()
    frcrn_loss(model(noisy), noisy, clean, mode=mode, config=model.config)["loss"].backward()
    without_gradient = sorted(name for name, p in model.named_parameters() if p.grad is None)
    assert without_gradient == sorted(unused_parameters(model))


def test_bf16_autocast_step_keeps_float32_weights():
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    result = train_step(model, optimizer, *batch(), StepSettings(precision="bfloat16"))
    assert not result.skipped and torch.isfinite(torch.tensor(result.loss))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_skipped_step_leaves_no_trace_in_batchnorm_statistics():
    """A finite input so loud that the forward pass overflows: the loss is not finite, and train-mode
    BatchNorm has already folded the batch into its running statistics; the skip must undo that."""
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    noisy, clean = batch()
    train_step(model, optimizer, noisy, clean)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    result = train_step(model, optimizer, noisy * 1e37, clean)

    assert result.skipped
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == []
    after = train_step(model, optimizer, noisy, clean)  # and training goes on from the same state
    assert not after.skipped and torch.isfinite(torch.tensor(after.loss))
