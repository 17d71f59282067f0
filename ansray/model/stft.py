"""FRCRN's STFT: the reference's convolution kernels (checkpoint buffers) and an FFT path for inference.

The reference (`conv_stft.py`) computes the STFT as a strided conv1d with a [2F, 1, win_len] kernel
(real rows, then imaginary rows, times a square-root periodic Hann window) and the inverse as a
transposed conv1d with the windowed pseudo-inverse, divided by the overlap-added squared window.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The reference adds this to the overlap-added squared window before dividing.
OLA_EPS = 1e-8


def analysis_window(win_len: int, win_type: str) -> np.ndarray:
    """Square root of a periodic Hann window ("hanning" and "hann" both mean this), float64 [win_len]."""
    if win_type.lower() == "none":
        return np.ones(win_len)
    n = np.arange(win_len)
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / win_len))


@functools.lru_cache(maxsize=4)
def dft_kernel(win_len: int, fft_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The real DFT as a [2F, win_len] kernel, and its pseudo-inverse transposed (float64, read-only).

    Cached: the SVD behind the pseudo-inverse costs more than the rest of a model's construction,
    and loading builds the network twice (on the meta device to check shapes, then for real).
    """
    # The first win_len rows of the DFT of an fft_len identity: memory grows with win_len * fft_len only.
    basis = np.fft.rfft(np.eye(win_len, fft_len))
    kernel = np.concatenate([basis.real, basis.imag], axis=1).T
    inverse = np.linalg.pinv(kernel).T
    kernel.setflags(write=False)
    inverse.setflags(write=False)
    return kernel, inverse


def stft_kernels(win_len: int, fft_len: int, win_type: str) -> dict[str, torch.Tensor]:
    """The four fixed tensors a reference checkpoint carries: `stft.weight`, `istft.{weight,window,enframe}`."""
    window = analysis_window(win_len, win_type)
    kernel, inverse = dft_kernel(win_len, fft_len)
    forward = kernel * window
    inverse = inverse * window
    return {
        "stft.weight": torch.from_numpy(forward[:, None, :].astype(np.float32)),
        "istft.weight": torch.from_numpy(inverse[:, None, :].astype(np.float32)),
        "istft.window": torch.from_numpy(window[None, :, None].astype(np.float32)),
        "istft.enframe": torch.eye(win_len, dtype=torch.float32)[:, None, :],
    }


class ConvSTFT(nn.Module):
    """[B, T] -> [B, 2F, frames] (real bins, then imaginary bins)."""

    def __init__(self, weight: torch.Tensor, win_inc: int):
        super().__init__()
        self.register_buffer("weight", weight)
        self.stride = win_inc

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return F.conv1d(wav.unsqueeze(1), self.weight, stride=self.stride)


class ConvISTFT(nn.Module):
    """[B, 2F, frames] -> [B, (frames - 1) * win_inc + win_len]."""

    def __init__(self, weight: torch.Tensor, window: torch.Tensor, enframe: torch.Tensor, win_inc: int):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("window", window)
        self.register_buffer("enframe", enframe)
        self.stride = win_inc

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        wav = F.conv_transpose1d(spec, self.weight, stride=self.stride)
        squared = self.window.repeat(1, 1, spec.shape[-1]) ** 2
        norm = F.conv_transpose1d(squared, self.enframe, stride=self.stride)
        return (wav / (norm + OLA_EPS)).squeeze(1)


class FFTSTFT(nn.Module):
    """The same transform pair as `ConvSTFT`/`ConvISTFT`, through torch.fft (win_len == fft_len only).

    With win_len == fft_len the conv kernel's pseudo-inverse equals irfft on every spectrum whose DC
    and Nyquist bins are real; irfft drops those two imaginary parts, which is exactly the
    pseudo-inverse's projection, so the result is the same up to float rounding.
    """

    def __init__(self, win_len: int, win_inc: int, win_type: str):
        super().__init__()
        self.win_len = win_len
        self.win_inc = win_inc
        self.register_buffer("window", torch.from_numpy(analysis_window(win_len, win_type).astype(np.float32)))

    def frames_spectrum(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] -> complex [B, frames, F] (time-major, as the inference path uses it)."""
        frames = wav.unfold(-1, self.win_len, self.win_inc) * self.window
        return torch.fft.rfft(frames, n=self.win_len)

    def frames_istft(self, spec: torch.Tensor) -> torch.Tensor:
        """complex [B, frames, F] -> [B, (frames - 1) * win_inc + win_len]."""
        batch, n_frames = spec.shape[:2]
        frames = torch.fft.irfft(spec, n=self.win_len) * self.window
        length = (n_frames - 1) * self.win_inc + self.win_len
        wav = F.fold(frames.transpose(1, 2), (1, length), (1, self.win_len), stride=(1, self.win_inc))
        return wav.reshape(batch, length) * self.inverse_norm(n_frames)

    def inverse_norm(self, n_frames: int) -> torch.Tensor:
        """1 / (overlap-added squared window + eps) over [(n_frames - 1) * win_inc + win_len] samples."""
        length = (n_frames - 1) * self.win_inc + self.win_len
        squared = (self.window**2).expand(1, n_frames, -1).transpose(1, 2)
        norm = F.fold(squared, (1, length), (1, self.win_len), stride=(1, self.win_inc))
        return 1.0 / (norm.reshape(length) + OLA_EPS)

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] -> complex [B, F, frames]."""
        return self.frames_spectrum(wav).transpose(1, 2)

    def istft(self, spec: torch.Tensor) -> torch.Tensor:
        """complex [B, F, frames] -> [B, (frames - 1) * win_inc + win_len]."""
        return self.frames_istft(spec.transpose(1, 2))
