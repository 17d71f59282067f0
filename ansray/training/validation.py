"""Per-epoch validation: the recipe's validation loss, SI-SNR improvement in dB, and PESQ / STOI
when the `eval` extra is installed; each worker scores its shard and the sums are all-reduced."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch
import torch.distributed as dist

from ansray.model import FRCRN, frcrn_loss, si_snr
from ansray.precision import autocast


def quality_metrics_available() -> bool:
    """PESQ and STOI need `ansray.metrics` and the `pesq` and `pystoi` packages (`ansray[eval]`)."""
    return all(importlib.util.find_spec(name) is not None for name in ("pesq", "pystoi"))


class ValidationSums:
    """Running sums of the validation metrics; `reduce` adds them up over the workers."""

    NAMES = ("loss", "si_snr", "si_snr_noisy", "pesq_wb", "stoi")

    def __init__(self):
        self.sums = {name: 0.0 for name in self.NAMES}
        self.counts = {name: 0 for name in self.NAMES}

    def add(self, name: str, values) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = values[np.isfinite(values)]
        self.sums[name] += float(finite.sum())
        self.counts[name] += int(finite.size)

    def reduce(self, device: torch.device) -> None:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        packed = torch.tensor([self.sums[n] for n in self.NAMES] + [self.counts[n] for n in self.NAMES],
                              dtype=torch.float64, device=device)
        dist.all_reduce(packed)
        values = packed.cpu().tolist()
        self.sums = dict(zip(self.NAMES, values[: len(self.NAMES)]))
        self.counts = dict(zip(self.NAMES, (int(c) for c in values[len(self.NAMES):])))

    def mean(self, name: str) -> float:
        return self.sums[name] / self.counts[name] if self.counts[name] else math.nan

    def metrics(self) -> dict[str, float]:
        """`valid_loss`, `valid_si_snr` (enhanced), `valid_si_snr_improvement` (over the noisy
        input), `valid_segments`, and `valid_pesq_wb` and `valid_stoi` where they were computed."""
        metrics = {
            "valid_loss": self.mean("loss"),
            "valid_si_snr": self.mean("si_snr"),
            "valid_si_snr_improvement": self.mean("si_snr") - self.mean("si_snr_noisy"),
            "valid_segments": self.counts["si_snr"],
        }
        for name in ("pesq_wb", "stoi"):
            if self.counts[name]:
                metrics["valid_" + name] = self.mean(name)
        return metrics


@torch.no_grad()
def validate(model: FRCRN, batches, *, device: torch.device, loss_mode: str = "Mix", precision: str = "float32",
             quality: bool = False, sample_rate: int = 16000) -> dict[str, float]:
    """Scores `model` (in eval mode, as ModelScope evaluates) on an iterable of {"noisy", "clean"}
    [B, T] batches, all-reduced over the workers. The loss is the recipe's, whose mean is what the
    learning-rate schedule watches; SI-SNR is FRCRN's (no mean removal), over the model's output
    length, and its improvement is over the noisy input on the same samples."""
    was_training = model.training
    model.eval()
    sums = ValidationSums()
    try:
        for batch in batches:
            noisy, clean = batch["noisy"].to(device), batch["clean"].to(device)
            with autocast(device, precision):
                out = model(noisy)
            out = type(out)(*(t.float() for t in out))
            loss = frcrn_loss(out, noisy, clean, mode=loss_mode, config=model.config)["loss"]
            length = out.wav_l2.shape[-1]
            enhanced, noisy, clean = out.wav_l2, noisy[:, :length], clean[:, :length]
            # Batch means, counted once per segment: the epoch's means weigh every segment alike.
            for name, value in (("loss", loss), ("si_snr", si_snr(enhanced, clean)),
                                ("si_snr_noisy", si_snr(noisy, clean))):
                sums.add(name, [float(value)] * len(noisy))
            if quality:
                add_quality(sums, enhanced.cpu().numpy(), clean.cpu().numpy(), sample_rate)
    finally:
        model.train(was_training)
    sums.reduce(device)
    return sums.metrics()


def add_quality(sums: ValidationSums, enhanced: np.ndarray, clean: np.ndarray, sample_rate: int) -> None:
    """PESQ-WB and STOI of each row of [B, T] arrays; NaN (skipped) where a metric is undefined."""
    from ansray.metrics import pesq_wb, stoi

    for estimate, reference in zip(enhanced, clean):
        sums.add("pesq_wb", [pesq_wb(estimate, reference, sample_rate)])
        sums.add("stoi", [stoi(estimate, reference, sample_rate)])
