"""FRCRN's training objective, as in ModelScope's `FRCRN.loss`: only stage 2 is scored.

'Mix' = amplitude-mask MSE + phase-mask MSE (each times 2F, against the clamped ideal cIRM) - SI-SNR.
'SiSNR' = -SI-SNR + a gain term: SI-SNR alone is blind to the output's sign and scale (a model
trained on it alone came out polarity-inverted and 5.7 dB loud), so the projection gain is pinned to 1.
'SNR' = -SNR, the plain (scale-dependent) signal-to-noise ratio.
'SNR+Spectral' = -SNR minus the SNR of power-law compressed spectra (|X|^0.3, magnitude and complex
terms, as in Braun & Tashev, "A consolidated view of loss functions for supervised deep learning-based
speech enhancement", 2021). Compression weighs quiet time-frequency regions, where residual noise is
heard between words, far more than a waveform SNR does. Alone it would trade level for less residual
noise (halving an output with faint noise everywhere lowers it), so the waveform SNR pins the level.
'SNR+Spectral+Residual' adds RESIDUAL_WEIGHT times the level in dB of the noise the mask lets through
(the mask applied to the noise alone, compressed, against the compressed speech): a push towards
suppression beyond what the distance to the clean speech asks for, as in the speech-distortion /
residual-noise weighting of Xia et al., "Weighted speech distortion losses for neural-network-based
real-time speech enhancement", 2020.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .config import FRCRNConfig
from .frcrn import FRCRNOutput
from .stft import stft_kernels

LOSS_MODES = ("Mix", "SiSNR", "SNR", "SNR+Spectral", "SNR+Spectral+Residual")
EPS = 1e-8
# Weight of (g - 1)^2, g the least-squares gain of the output onto the clean speech, against SI-SNR
# in dB: g = 0.89 (-1 dB) costs 0.12, an inverted output (g = -1) 40.
GAIN_WEIGHT = 10.0
# Braun & Tashev's choices: magnitudes raised to 0.3, and 0.3 of the distance from the complex term.
SPECTRAL_POWER = 0.3
SPECTRAL_COMPLEX_WEIGHT = 0.3
RESIDUAL_WEIGHT = 1.0  # on compressed dB, about 0.3 per dB of residual noise power


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


def _spectrum(signal: torch.Tensor, config: FRCRNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] -> the real and imaginary parts of FRCRN's STFT, [B, F, frames] each."""
    kernel = _analysis_kernel(config.win_len, config.fft_len, config.win_type).to(signal)
    spectrum = F.conv1d(signal.unsqueeze(1), kernel, stride=config.win_inc)
    return spectrum[:, : config.freq_bins], spectrum[:, config.freq_bins :]


def compressed_spectral_snr(estimate: torch.Tensor, target: torch.Tensor, config: FRCRNConfig,
                            eps: float = EPS) -> torch.Tensor:
    """Mean over the batch of 10 log10(E / D) in dB, [B, T] each: E the energy of the target's
    compressed spectrum, D the distance of the estimate's from it, (1 - w) on magnitudes and w on
    complex values, with magnitudes raised to SPECTRAL_POWER (phases kept) and w SPECTRAL_COMPLEX_WEIGHT.
    The ratio does not depend on the level the two signals share."""
    # Both signals at the target's unit RMS, so that eps (which keeps |X|^(c-1) finite) sits ~100 dB
    # under the speech whatever the input's level, instead of flooring the quiet bins of quiet inputs.
    scale = torch.sqrt(torch.mean(target**2, -1, keepdim=True) + eps)

    def compressed(signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        real, imag = _spectrum(signal / scale, config)
        magnitude = torch.sqrt(real**2 + imag**2 + eps)
        factor = magnitude ** (SPECTRAL_POWER - 1)  # |X|^c e^{j phase} = X |X|^(c-1)
        return magnitude * factor, real * factor, imag * factor

    est_mag, est_real, est_imag = compressed(estimate)
    ref_mag, ref_real, ref_imag = compressed(target)
    magnitude_distance = torch.sum((est_mag - ref_mag) ** 2, dim=(1, 2))
    complex_distance = torch.sum((est_real - ref_real) ** 2 + (est_imag - ref_imag) ** 2, dim=(1, 2))
    distance = (1 - SPECTRAL_COMPLEX_WEIGHT) * magnitude_distance + SPECTRAL_COMPLEX_WEIGHT * complex_distance
    energy = torch.sum(ref_mag**2, dim=(1, 2))
    return torch.mean(10 * torch.log10(energy / (distance + eps) + eps))


def residual_noise_level(mask: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor, config: FRCRNConfig,
                         eps: float = EPS) -> torch.Tensor:
    """Mean over the batch of 10 log10(R / E) in dB: R the energy of the compressed spectrum of the noise
    (noisy - clean) times `mask` ([B, 2F, frames], real rows then imaginary), E that of the clean
    speech. The mask is linear in its input, so this is the noise part of the network's output."""
    scale = torch.sqrt(torch.mean(clean**2, -1, keepdim=True) + eps)
    Sr, Si = _spectrum(clean / scale, config)
    Nr, Ni = _spectrum((noisy - clean) / scale, config)
    Mr, Mi = mask[:, : config.freq_bins], mask[:, config.freq_bins :]
    residual_power = (Nr * Mr - Ni * Mi) ** 2 + (Nr * Mi + Ni * Mr) ** 2 + eps
    speech_power = Sr**2 + Si**2 + eps
    # |X|^(2c) = (|X|^2)^c: the same compression as compressed_spectral_snr
    residual = torch.sum(residual_power**SPECTRAL_POWER, dim=(1, 2))
    speech = torch.sum(speech_power**SPECTRAL_POWER, dim=(1, 2))
    return torch.mean(10 * torch.log10(residual / speech + eps))


def ideal_cirm(noisy: torch.Tensor, clean: torch.Tensor, config: FRCRNConfig) -> torch.Tensor:
    """The clamped ideal complex ratio mask S / Y, [B, 2F, frames] (real rows, then imaginary)."""
    Sr, Si = _spectrum(clean, config)
    Yr, Yi = _spectrum(noisy, config)
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
    elif mode == "SNR":
        loss = -snr(out.wav_l2, clean)
    else:  # SNR+Spectral, SNR+Spectral+Residual
        loss = -snr(out.wav_l2, clean) - compressed_spectral_snr(out.wav_l2, clean, config)
        if mode == "SNR+Spectral+Residual":
            loss = loss + RESIDUAL_WEIGHT * residual_noise_level(out.mask_l2, noisy, clean, config)
    return {"loss": loss, "amp_loss": amp_loss, "phase_loss": phase_loss, "sisnr": sisnr, "gain_loss": gain_loss}
