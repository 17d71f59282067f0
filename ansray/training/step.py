"""One optimisation step of FRCRN: forward, `frcrn_loss`, backward, clipping, and the update, which
is skipped (and reported) when the loss, the gradient norm or BatchNorm's running statistics are not
finite on any worker; a skipped step leaves the model as it was."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from ansray.model import FRCRN, FRCRNOutput, frcrn_loss
from ansray.precision import autocast


@dataclass(frozen=True)
class StepSettings:
    """How a step is taken; the defaults are the recipe's (Mix loss, clipping at norm 10)."""

    loss_mode: str = "Mix"
    clip_grad_norm: float = 10.0
    precision: str = "float32"  # a name of ansray.precision


@dataclass(frozen=True)
class StepResult:
    """The step's losses before the update (`loss` is what was backpropagated; `sisnr` is minus the
    SI-SNR in dB, as the reference names it), the gradient norm before clipping, and whether the
    update was skipped."""

    loss: float
    amp_loss: float
    phase_loss: float
    sisnr: float
    grad_norm: float
    skipped: bool


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    noisy: torch.Tensor,
    clean: torch.Tensor,
    settings: StepSettings = StepSettings(),
    scaler: torch.amp.GradScaler | None = None,
) -> StepResult:
    """One step on a batch `noisy`, `clean` [B, T]. `model` is an FRCRN, or a DDP wrapper of one.

    The loss is computed in float32 whatever the precision (the STFT masks and SI-SNR need the
    range). Under DDP, gradients are already averaged in backward, so every worker sees the same
    norm; the finite check is still agreed on by all workers, so that they skip together. The
    forward pass in train mode updates BatchNorm's running statistics before the loss is known, so
    they are saved first and put back when the step is skipped.
    """
    net: FRCRN = model.module if hasattr(model, "module") else model
    model.train()
    optimizer.zero_grad(set_to_none=True)
    statistics = running_statistics(net)
    saved = [t.clone() for t in statistics]
    with autocast(noisy.device, settings.precision):
        out = model(noisy)
    out = FRCRNOutput(*(t.float() for t in out))
    losses = frcrn_loss(out, noisy, clean, mode=settings.loss_mode, config=net.config)
    loss = losses["loss"]
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)
    parameters = [p for p in net.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, settings.clip_grad_norm)
    finite = all_workers_true(
        bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm)) and all_finite_tensors(statistics),
        noisy.device,
    )
    if finite:
        if scaler is not None:
            scaler.step(optimizer)
        else:
            optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for tensor, value in zip(statistics, saved):
                tensor.copy_(value)
    if scaler is not None:
        scaler.update()
    values = {k: float(v.detach()) for k, v in losses.items()}
    return StepResult(values["loss"], values["amp_loss"], values["phase_loss"], values["sisnr"],
                      float(grad_norm), skipped=not finite)


def running_statistics(net: torch.nn.Module) -> list[torch.Tensor]:
    """The buffers a forward pass in train mode changes: BatchNorm's running mean, variance and count."""
    return [t for m in net.modules() if getattr(m, "track_running_stats", False) for t in m.buffers(recurse=False)]


def all_finite_tensors(tensors: list[torch.Tensor]) -> bool:
    """True when no floating tensor among `tensors` holds a NaN or an Inf (one sync per device: a model on a
    GPU has optimizer step counters on the CPU)."""
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors:
        if t.is_floating_point():
            by_device.setdefault(t.device, []).append(t.isfinite().all())
    return all(bool(torch.stack(flags).all()) for flags in by_device.values())


def all_workers_true(flag: bool, device: torch.device) -> bool:
    """`flag` and-ed over the distributed group (just `flag` outside one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)


def unused_parameters(model: FRCRN) -> list[str]:
    """Names of the parameters in the blocks the forward pass never runs (`UNetLayout.unused_blocks`).

    The reference registers them so that its checkpoints hold them, and they receive no gradient.
    Freezing them lets DDP run without `find_unused_parameters`; Adam never updated them in the
    reference either, as it skips parameters without a gradient.
    """
    prefixes = tuple(f"{unet}.{block}." for unet in ("unet", "unet2") for block in model.layout.unused_blocks())
    return [name for name, _ in model.named_parameters() if name.startswith(prefixes)]


def freeze_unused_parameters(model: FRCRN) -> list[str]:
    names = set(unused_parameters(model))
    for name, parameter in model.named_parameters():
        if name in names:
            parameter.requires_grad_(False)
    return sorted(names)
