"""FRCRN's training objective, as in ModelScope's `FRCRN.loss`: only stage 2 is scored.

'Mix' = amplitude-mask MSE + phase-mask MSE (each times 2F, against the clamped ideal cIRM) - SI-SNR.
'SiSNR' = -SI-SNR + a gain term: SI-SNR alone is blind to the output's sign and scale (a model
trained on it alone came out polarity-inverted and 5.7 dB loud), so the projection gain is pinned to 1.
'SNR' = -SNR, the plain (scale-dependent) signal-to-noise ratio.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .config import FRCRNConfig
from .frcrn import FRCRNOutput
from .stft import stft_kernels

LOSS_MODES = ("Mix", "SiSNR", "SNR")
EPS = 1e-8
# Weight of (g - 1)^2, g the least-squares gain of the output onto the clean speech, against SI-SNR
# in dB: g = 0.89 (-1 dB) costs 0.12, an inverted output (g = -1) 40.
GAIN_WEIGHT = 10.0


def si_snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Mean SI-SNR in dB over the batch, [B, T] each; no mean removal, as in the reference."""
    dot = torch.sum(estimate * target, -1, keepdim=True)
    target_energy = torch.sum(target * target, -1, keepdim=True)
    projection = dot / (target_energy + eps) * target
    noise = estimate - projection
    ratio = torch.sum(projection**2, -1) / (torch.sum(noise**2, -1) + eps)
    return torch.mean(10 * torch.log10(ratio + eps))


def projection_gain(estimate: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """[B] least-squares gain g of `estimate` onto `target` ([B, T] each): estimate ~ g * target + e,
    e orthogonal to target. Negative g is an inverted output; SI-SNR cannot see g at all."""
    return torch.sum(estimate * target, -1) / (torch.sum(target * target, -1) + eps)


def snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Mean SNR in dB over the batch, [B, T] each: the error includes any change of scale or sign."""
    error = torch.sum((estimate - target) ** 2, -1)
    return torch.mean(10 * torch.log10(torch.sum(target * target, -1) / (error + eps) + eps))


@functools.lru_cache(maxsize=4)
def _analysis_kernel(win_len: int, fft_len: int, win_type: str) -> torch.Tensor:
    return stft_kernels(win_len, fft_len, win_type)["stft.weight"]


def ideal_cirm(noisy: torch.Tensor, clean: torch.Tensor, config: FRCRNConfig) -> torch.Tensor:
    """The clamped ideal complex ratio mask S / Y, [B, 2F, frames] (real rows, then imaginary)."""
    kernel = _analysis_kernel(config.win_len, config.fft_len, config.win_type).to(noisy)
    bins = config.freq_bins
    S = F.conv1d(clean.unsqueeze(1), kernel, stride=config.win_inc)
    Y = F.conv1d(noisy.unsqueeze(1), kernel, stride=config.win_inc)
    Sr, Si, Yr, Yi = S[:, :bins], S[:, bins:], Y[:, :bins], Y[:, bins:]
    power = Yr**2 + Yi**2 + EPS
    mask = torch.cat([(Sr * Yr + Si * Yi) / power, (Si * Yr - Sr * Yi) / power], dim=1)
    # The reference's clamp is asymmetric on purpose: values beyond +-2 jump to +-1, not to +-2.
    mask = torch.where(mask > 2, torch.ones_like(mask), mask)
    return torch.where(mask < -2, -torch.ones_like(mask), mask)


def frcrn_loss(
    out: FRCRNOutput,
    noisy: torch.Tensor,
    clean: torch.Tensor,
    mode: str = "Mix",
    config: FRCRNConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Returns `loss` (what to backpropagate), `amp_loss`, `phase_loss`, `sisnr` (= -SI-SNR in dB,
    the reference's name for the term) and `gain_loss` (SiSNR's gain term). `noisy` and `clean` are
    [B, T]; `clean` is trimmed to the output length, which drops the tail that does not fill a frame."""
    if mode not in LOSS_MODES:
        raise ValueError(f"loss mode must be one of {LOSS_MODES}, got {mode!r}")
    config = config or FRCRNConfig()
    length = out.wav_l2.shape[-1]
    noisy, clean = noisy[..., :length], clean[..., :length]
    sisnr = -si_snr(out.wav_l2, clean)
    with torch.no_grad():
        target = ideal_cirm(noisy, clean, config)
    bins = config.freq_bins
    scale = 2 * bins  # the reference multiplies each MSE by d = 2F
    amp_loss = F.mse_loss(out.mask_l2[:, :bins], target[:, :bins]) * scale
    phase_loss = F.mse_loss(out.mask_l2[:, bins:], target[:, bins:]) * scale
    gain_loss = GAIN_WEIGHT * torch.mean((projection_gain(out.wav_l2, clean) - 1) ** 2)
    if mode == "Mix":
        loss = amp_loss + phase_loss + sisnr
    elif mode == "SiSNR":
        loss = sisnr + gain_loss
    else:
        loss = -snr(out.wav_l2, clean)
    return {"loss": loss, "amp_loss": amp_loss, "phase_loss": phase_loss, "sisnr": sisnr, "gain_loss": gain_loss}
