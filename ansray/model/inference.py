"""A faster inference path for FRCRN that computes what `FRCRN.forward` computes, restructured.

- Complex tensors are [B, 2C, H, T] (real channels, then imaginary), so each complex (transposed)
  convolution becomes one real convolution with the block weight [[Wr, -Wi], [Wi, Wr]].
- Eval-mode BatchNorm is folded into the preceding convolution.
- The STFT pair runs through torch.fft instead of the 640x642 matrix kernels.
- The stage-1 waveform, which only training looks at, is not synthesised unless asked for.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ComplexBatchNorm2d, ComplexConv2d, ComplexConvTranspose2d, UniDeepFsmn
from .frcrn import FRCRN, STRIDE, PADDING, UNet
from .stft import FFTSTFT, stft_kernels


class InferenceOutput(NamedTuple):
    wav: torch.Tensor  # [B, samples], the stage-2 waveform (`wav_l2`)
    mask: torch.Tensor  # [B, 2F, frames], the stage-2 cIRM (`mask_l2`)
    wav_l1: torch.Tensor | None  # the stage-1 waveform, only when asked for


def _folded_bn(bn: ComplexBatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of the eval-mode BatchNorm, real channels then imaginary."""
    scales, shifts = [], []
    for part in (bn.bn_re, bn.bn_im):
        scale = part.weight / torch.sqrt(part.running_var + part.eps)
        scales.append(scale)
        shifts.append(part.bias - part.running_mean * scale)
    return torch.cat(scales), torch.cat(shifts)


def fused_conv_weight(conv: ComplexConv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """[2O, 2I, kh, kw] weight and [2O] bias of the complex conv on stacked channels."""
    wr, wi = conv.conv_re.weight, conv.conv_im.weight
    weight = torch.cat([torch.cat([wr, -wi], dim=1), torch.cat([wi, wr], dim=1)], dim=0)
    br, bi = conv.conv_re.bias, conv.conv_im.bias
    return weight, torch.cat([br - bi, br + bi])


def fused_tconv_weight(tconv: ComplexConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """[2I, 2O, kh, kw] weight and [2O] bias of the complex transposed conv on stacked channels."""
    wr, wi = tconv.tconv_re.weight, tconv.tconv_im.weight
    weight = torch.cat([torch.cat([wr, wi], dim=1), torch.cat([-wi, wr], dim=1)], dim=0)
    br, bi = tconv.tconv_re.bias, tconv.tconv_im.bias
    return weight, torch.cat([br - bi, br + bi])


class FusedConv(nn.Module):
    """Complex conv (+ folded BatchNorm) (+ LeakyReLU) as one real conv2d or conv_transpose2d."""

    def __init__(self, conv: nn.Module, bn: ComplexBatchNorm2d | None, activation: bool):
        super().__init__()
        self.transposed = isinstance(conv, ComplexConvTranspose2d)
        weight, bias = fused_tconv_weight(conv) if self.transposed else fused_conv_weight(conv)
        if bn is not None:
            scale, shift = _folded_bn(bn)
            out_dim = 1 if self.transposed else 0
            shape = [1, 1, 1, 1]
            shape[out_dim] = -1
            weight = weight * scale.reshape(shape)
            bias = bias * scale + shift
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        inner = conv.tconv_re if self.transposed else conv.conv_re
        self.stride, self.padding = inner.stride, inner.padding
        self.activation = activation

    def forward(self, x):
        op = F.conv_transpose2d if self.transposed else F.conv2d
        y = op(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return F.leaky_relu(y) if self.activation else y


def _fsmn_pair(fsmn_re: UniDeepFsmn, fsmn_im: UniDeepFsmn, real, imag):
    """Complex FSMN: both branches see real and imaginary parts in one batched call each."""
    n = real.shape[0]
    both = torch.cat([real, imag], dim=0)
    out_re, out_im = fsmn_re(both), fsmn_im(both)
    return out_re[:n] - out_im[n:], out_re[n:] + out_im[:n]


class FsmnFreq(nn.Module):
    """`ComplexFsmnFreq` on [B, 2C, H, T]."""

    def __init__(self, block):
        super().__init__()
        self.fsmn_re, self.fsmn_im = block.fsmn_re_L1, block.fsmn_im_L1

    def forward(self, x):
        b, c2, h, t = x.shape
        z = x.permute(0, 3, 2, 1).reshape(b * t, h, 2, c2 // 2)
        real, imag = _fsmn_pair(self.fsmn_re, self.fsmn_im, z[:, :, 0], z[:, :, 1])
        out = torch.stack([real, imag], dim=2).reshape(b, t, h, c2)
        return out.permute(0, 3, 2, 1).contiguous()


class FsmnTime(nn.Module):
    """`ComplexFsmnTime` on [B, 2C, 1, T]."""

    def __init__(self, block):
        super().__init__()
        self.layers = [(block.fsmn_re_L1, block.fsmn_im_L1), (block.fsmn_re_L2, block.fsmn_im_L2)]
        self.blocks = nn.ModuleList([block])

    def forward(self, x):
        b, c2, h, t = x.shape
        z = x.reshape(b, 2, (c2 // 2) * h, t).transpose(2, 3)  # [B, 2, T, C*H]
        real, imag = z[:, 0], z[:, 1]
        for fsmn_re, fsmn_im in self.layers:
            real, imag = _fsmn_pair(fsmn_re, fsmn_im, real, imag)
        return torch.stack([real, imag], dim=1).transpose(2, 3).reshape(b, c2, h, t)


class SqueezeExcite(nn.Module):
    """`ComplexSELayer` on [B, 2C, H, T]."""

    def __init__(self, block):
        super().__init__()
        self.fc_r, self.fc_i = block.fc_r, block.fc_i

    def forward(self, x):
        b, c2 = x.shape[:2]
        mean = x.mean(dim=(2, 3))
        x_r, x_i = mean[:, : c2 // 2], mean[:, c2 // 2 :]
        r_r, r_i = self.fc_r(torch.cat([x_r, x_i])).chunk(2)
        i_r, i_i = self.fc_i(torch.cat([x_r, x_i])).chunk(2)
        gate = torch.cat([r_r - i_i, r_i + i_r], dim=1)
        return x * gate[:, :, None, None]


class FusedUNet(nn.Module):
    def __init__(self, unet: UNet):
        super().__init__()
        self.levels = levels = unet.levels
        block = unet.block
        self.fsmn_enc = nn.ModuleList([FsmnFreq(block("fsmn_enc", i)) for i in range(1, levels)])
        self.encoders = nn.ModuleList(
            [FusedConv(block("encoder", i).conv, block("encoder", i).bn, True) for i in range(levels)]
        )
        self.se_enc = nn.ModuleList([SqueezeExcite(block("se_layer_enc", i)) for i in range(levels - 1)])
        self.fsmn = FsmnTime(unet.fsmn)
        self.decoders = nn.ModuleList(
            [FusedConv(block("decoder", i).transconv, block("decoder", i).bn, True) for i in range(levels)]
        )
        self.fsmn_dec = nn.ModuleList([FsmnFreq(block("fsmn_dec", i)) for i in range(levels - 1)])
        self.se_dec = nn.ModuleList([SqueezeExcite(block("se_layer_dec", i)) for i in range(levels - 2)])
        self.linear = FusedConv(unet.linear, None, False)

    def forward(self, x):
        skips = []
        for i in range(self.levels):
            if i > 0:
                x = self.fsmn_enc[i - 1](x)
            x = self.encoders[i](x)
            if i < self.levels - 1:  # the deepest encoder's squeeze-excitation feeds no skip
                skips.append(self.se_enc[i](x))
        p = self.fsmn(x)
        for i in range(self.levels):
            p = self.decoders[i](p)
            if i == self.levels - 1:
                break
            p = self.fsmn_dec[i](p)
            if i < self.levels - 2:
                p = self.se_dec[i](p)
            p = cat_complex_channels(p, skips[self.levels - 2 - i])
        return self.linear(p)


def cat_complex_channels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenates two complex [B, 2C, H, T] tensors along channels, keeping real-then-imaginary."""
    ca, cb = a.shape[1] // 2, b.shape[1] // 2
    return torch.cat([a[:, :ca], b[:, :cb], a[:, ca:], b[:, cb:]], dim=1)


class FRCRNInference(nn.Module):
    """Eval-only FRCRN with fused arithmetic: [B, T] -> `InferenceOutput`. Build with `from_model`."""

    def __init__(self, model: FRCRN):
        super().__init__()
        config = model.config
        self.config = config
        self.unet = FusedUNet(model.unet)
        self.unet2 = FusedUNet(model.unet2)
        self.fft = FFTSTFT(config.win_len, config.win_inc, config.win_type) if _fft_matches(model) else None
        self.stft, self.istft = model.stft, model.istft

    @classmethod
    def from_model(cls, model: FRCRN) -> "FRCRNInference":
        was_training = model.training
        model.eval()
        with torch.no_grad():
            fused = cls(model).eval()
        model.train(was_training)
        return fused

    def spectrum(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] -> [B, 2, F, frames] (real, imaginary)."""
        if self.fft is not None:
            spec = self.fft.stft(wav)
            return torch.stack([spec.real, spec.imag], dim=1)
        spec = self.stft(wav)
        return spec.reshape(spec.shape[0], 2, -1, spec.shape[-1])

    def waveform(self, spec: torch.Tensor) -> torch.Tensor:
        """[B, 2, F, frames] -> [B, samples]."""
        if self.fft is not None:
            return self.fft.istft(torch.complex(spec[:, 0], spec[:, 1]))
        return self.istft(spec.flatten(1, 2))

    def forward(self, wav: torch.Tensor, stage1: bool = False) -> InferenceOutput:
        spec = self.spectrum(wav)
        unet1_out = self.unet(spec)
        mask1 = torch.tanh(unet1_out)
        mask2 = torch.tanh(self.unet2(unet1_out)) + mask1
        wav_l1 = self.waveform(complex_multiply(spec, mask1)) if stage1 else None
        wav_l2 = self.waveform(complex_multiply(spec, mask2))
        return InferenceOutput(wav_l2, mask2.flatten(1, 2), wav_l1)


def complex_multiply(spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Complex product of [B, 2, F, T] tensors (real, imaginary on dim 1)."""
    sr, si, mr, mi = spec[:, 0], spec[:, 1], mask[:, 0], mask[:, 1]
    return torch.stack([sr * mr - si * mi, sr * mi + si * mr], dim=1)


def _fft_matches(model: FRCRN) -> bool:
    """The FFT path is used only where it reproduces the checkpoint's own STFT kernels."""
    config = model.config
    if config.win_len != config.fft_len:
        return False
    analytic = stft_kernels(config.win_len, config.fft_len, config.win_type)
    state = model.state_dict()
    return all(torch.allclose(state[name].cpu().float(), value, atol=1e-6) for name, value in analytic.items())
