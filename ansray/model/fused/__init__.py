"""A faster inference path for FRCRN that computes what `FRCRN.forward` computes, restructured.

- Time-major activations: a complex feature map is a pair (real, imaginary) of [B, C, T, H] tensors
  in channels_last memory, i.e. [B, T, H, C] physically. It is the layout the STFT produces and the
  one oneDNN convolutions run fastest in, and every FSMN linear is a plain matrix product over its
  rows [B*T*H, C], with no permute copies.
- Eval-mode BatchNorm and the biases are folded into the convolutions. Complex convolutions run as
  two real ones summed (the first UNet's encoders, whose rounding the mask amplifies most) or in
  Gauss's three-multiplication form (the rest); transposed ones as two phases of forward ones.
- Each complex FSMN runs its four branches as four matrix products and one depthwise convolution,
  a few thousand rows at a time, in place; skip concatenations are written in place, and the widest
  skip is kept apart from the decoder path (see FusedUNet.forward), so that a 10 s segment of the
  official model peaks at ~0.4 GB of activations instead of ~0.6 GB.
- The first encoder and the last decoder, with one complex channel, are matrix products on the
  [B, T, F, 2] spectrum layout. The STFT pair runs through torch.fft instead of the 640x642 matrix
  kernels, and the stage-1 waveform, which only training looks at, is made only when asked for.

Here: the two-stage network and its STFT choice. The parts: layout.py (the pair layout), folding.py
(BatchNorm and Gauss's form folded into weights), convolutions.py, fsmn.py, squeeze_excite.py, unet.py.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from ..frcrn import FRCRN
from ..stft import FFTSTFT, stft_kernels
from .fsmn import FSMN_CHUNK_ROWS, FSMN_CHUNK_ROWS_DEFAULT, ComplexFsmn
from .squeeze_excite import SqueezeExcite
from .unet import FusedUNet

__all__ = [
    "FSMN_CHUNK_ROWS",
    "FSMN_CHUNK_ROWS_DEFAULT",
    "ComplexFsmn",
    "FRCRNInference",
    "FusedUNet",
    "InferenceOutput",
    "SqueezeExcite",
]


class InferenceOutput(NamedTuple):
    wav: torch.Tensor  # [B, samples], the stage-2 waveform (`wav_l2`)
    mask: torch.Tensor  # [B, 2F, frames], the stage-2 cIRM (`mask_l2`)
    wav_l1: torch.Tensor | None  # the stage-1 waveform, only when asked for


class FRCRNInference(nn.Module):
    """Eval-only FRCRN with fused arithmetic: [B, T] -> `InferenceOutput`. Build with `from_model`.

    Under `torch.autocast`, the UNets run in the autocast dtype (weights cast once and cached), the
    first one only if `stage1_in_autocast` (the first UNet's rounding reaches the output amplified);
    the STFT, the masks and the iSTFT stay in float32.
    """

    stage1_in_autocast: bool = True

    def __init__(self, model: FRCRN):
        super().__init__()
        config = model.config
        self.config = config
        if model.layout.heights[-1] != 1:
            raise ValueError("the bottleneck FSMN expects one frequency row; this layout has more")
        self.unet = FusedUNet(model.unet, gauss_encoders=False)
        self.unet2 = FusedUNet(model.unet2, gauss_encoders=True)
        self.fft = None
        if _fft_matches(model):
            self.fft = FFTSTFT(config.win_len, config.win_inc, config.win_type).to(model.stft.weight.device)
        self.stft, self.istft = model.stft, model.istft
        self._cast_unets: dict[torch.dtype, tuple[FusedUNet, FusedUNet]] = {}

    @classmethod
    def from_model(cls, model: FRCRN) -> "FRCRNInference":
        """The inference network of `model`, on its device."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            fused = cls(model).eval()
        model.train(was_training)
        return fused

    def _apply(self, fn, *args, **kwargs):
        self._cast_unets = {}  # moved or cast: rebuild the low-precision copies from the new weights
        return super()._apply(fn, *args, **kwargs)

    def unets(self, dtype: torch.dtype) -> tuple[FusedUNet, FusedUNet]:
        """The two UNets to run under autocast to `dtype` (the float32 ones outside autocast)."""
        if dtype == _dtype_of(self.unet):
            return self.unet, self.unet2
        if dtype not in self._cast_unets:
            self._cast_unets[dtype] = (copy.deepcopy(self.unet).to(dtype), copy.deepcopy(self.unet2).to(dtype))
        unet, unet2 = self._cast_unets[dtype]
        return (unet if self.stage1_in_autocast else self.unet), unet2

    def spectrum(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> [B, frames, F, 2] (real, imaginary)."""
        if self.fft is not None:
            return torch.view_as_real(self.fft.frames_spectrum(wav))
        spec = self.stft(wav)  # [B, 2F, frames]
        return spec.view(spec.shape[0], 2, -1, spec.shape[-1]).permute(0, 3, 2, 1).contiguous()

    def waveform(self, spec: torch.Tensor) -> torch.Tensor:
        """[B, frames, F, 2] -> [B, samples]."""
        if self.fft is not None:
            return self.fft.frames_istft(torch.view_as_complex(spec))
        return self.istft(spec.permute(0, 3, 2, 1).flatten(1, 2))

    def forward(self, wav: torch.Tensor, stage1: bool = False) -> InferenceOutput:
        """[B, samples] -> `InferenceOutput`; `stage1` also synthesises the stage-1 waveform."""
        device_type = wav.device.type
        dtype = _autocast_dtype(device_type) or wav.dtype
        with torch.autocast(device_type, enabled=False):
            return self._forward(wav.float() if dtype != wav.dtype else wav, dtype, stage1)

    def _forward(self, wav: torch.Tensor, dtype: torch.dtype, stage1: bool) -> InferenceOutput:
        unet, unet2 = self.unets(dtype)
        spec = self.spectrum(wav)
        out1 = unet(spec.to(_dtype_of(unet)))
        mask2 = torch.tanh(unet2(out1.to(_dtype_of(unet2))).to(wav.dtype))
        mask1 = torch.tanh(out1.to(wav.dtype))
        del out1
        mask2 += mask1
        wav_l1 = self.waveform(complex_multiply(spec, mask1)) if stage1 else None
        wav_l2 = self.waveform(complex_multiply(spec, mask2))
        b, frames, bins, _ = mask2.shape
        return InferenceOutput(wav_l2, mask2.permute(0, 3, 2, 1).reshape(b, 2 * bins, frames), wav_l1)


def _dtype_of(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype `torch.autocast` is running `device_type` in, or None outside autocast."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def complex_multiply(spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Complex product of [..., 2] (real, imaginary) tensors."""
    return torch.view_as_real(torch.view_as_complex(spec) * torch.view_as_complex(mask.contiguous()))


def _fft_matches(model: FRCRN) -> bool:
    """The FFT path is used only where it reproduces the checkpoint's own STFT kernels."""
    config = model.config
    if config.win_len != config.fft_len:
        return False
    analytic = stft_kernels(config.win_len, config.fft_len, config.win_type)
    state = model.state_dict()
    return all(torch.allclose(state[name].cpu().float(), value, atol=1e-6) for name, value in analytic.items())

