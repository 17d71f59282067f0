"""The fused path's complex convolutions, BatchNorm folded in: the encoders, the transposed-conv
decoders, the first encoder and the last decoder on the [B, T, F, 2] spectrum, and the final 1x1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ComplexBatchNorm2d
from .folding import bn_affine, frozen, frozen_channels_last, gauss_biases, gauss_products
from .layout import CHANNELS_LAST, halves, row_view


def _conv_arguments(stride, padding, kernel_freq: int, height: int) -> tuple[dict, tuple]:
    """conv2d's stride and padding for an input `height` rows high, and the output rows to keep.

    Where the kernel spans the whole padded input, the output has one row and the frequency stride
    changes nothing: it is dropped and the first row kept. PyTorch 2.13's CPU bfloat16 and float16
    convolution reads uninitialised memory for a strided conv with a one-row output (NaN out of the
    tiny model's last encoder, whose kernel spans its 17 rows, depending on what the heap held).
    """
    if height + 2 * padding[1] - kernel_freq < stride[1]:
        return dict(stride=(stride[0], 1), padding=padding), (Ellipsis, slice(0, 1))
    return dict(stride=stride, padding=padding), (Ellipsis,)


def _require_unit_time_stride(conv: nn.Module, method: str) -> None:
    """Raise unless `conv`, a reference (de)convolution with (freq, time) stride and padding, has time
    stride 1 and no frequency padding: the shapes `method` is written for."""
    (_, time_stride), (freq_pad, _) = conv.stride, conv.padding
    if time_stride != 1 or freq_pad != 0:
        raise ValueError(f"{method} expects time stride 1 and no frequency padding")


class EncoderConv(nn.Module):
    """Complex conv + folded BatchNorm + LeakyReLU: (real, imaginary) -> [B, 2O, T', H'] stacked.

    Two real convolutions, [Wr; Wi] on the real part and [-Wi; Wr] on the imaginary one, summed into
    the stacked output (real channels, then imaginary). Not Gauss's form, nor one convolution over
    stacked inputs: the first UNet's encoders amplify rounding the most, and on the parity fixture
    the mask's rounding error is ~1.4x larger with either than with these two half-length sums,
    which round like the reference's own conv_re(x_re) - conv_im(x_im).
    """

    def __init__(self, conv, bn: ComplexBatchNorm2d):
        super().__init__()
        wr, wi = conv.conv_re.weight.transpose(2, 3), conv.conv_im.weight.transpose(2, 3)  # [O, I, time, freq]
        (scale_r, _), (scale_i, _) = scales = bn_affine(bn)
        scale = torch.cat([scale_r, scale_i]).reshape(-1, 1, 1, 1)
        self.from_real = frozen_channels_last(torch.cat([wr, wi]) * scale)
        self.from_imag = frozen_channels_last(torch.cat([-wi, wr]) * scale)
        self.bias = frozen(torch.cat(gauss_biases(conv.conv_re.bias, conv.conv_im.bias, scales)))
        self.stride = tuple(reversed(conv.conv_re.stride))
        self.padding = tuple(reversed(conv.conv_re.padding))

    def forward(self, real: torch.Tensor, imag: torch.Tensor):
        """[B, I, T, H] pair -> [B, O, T', H'] pair (the halves of one stacked tensor)."""
        kw, rows = _conv_arguments(self.stride, self.padding, self.from_real.shape[3], real.shape[3])
        out = F.conv2d(real, self.from_real, self.bias, **kw)
        out += F.conv2d(imag, self.from_imag, None, **kw)
        return halves(F.leaky_relu_(out[rows]))


class GaussConv(nn.Module):
    """Complex conv + folded BatchNorm + LeakyReLU in Gauss's form: three real convolutions, the
    BatchNorm scale of each part applied to the shared product in one multiply-add."""

    def __init__(self, conv, bn: ComplexBatchNorm2d):
        super().__init__()
        wr, wi = conv.conv_re.weight.transpose(2, 3), conv.conv_im.weight.transpose(2, 3)  # [O, I, time, freq]
        scales = bn_affine(bn)
        self.w_sum, self.w_real, self.w_imag = (frozen_channels_last(w) for w in gauss_products(wr, wi, scales, 0))
        self.b_real, self.b_imag = (frozen(b) for b in gauss_biases(conv.conv_re.bias, conv.conv_im.bias, scales))
        self.scale_real = frozen(scales[0][0].reshape(1, -1, 1, 1))
        self.scale_imag = frozen(scales[1][0].reshape(1, -1, 1, 1))
        self.stride = tuple(reversed(conv.conv_re.stride))
        self.padding = tuple(reversed(conv.conv_re.padding))

    def forward(self, real: torch.Tensor, imag: torch.Tensor):
        """[B, I, T, H] pair -> [B, O, T', H'] pair."""
        kw, rows = _conv_arguments(self.stride, self.padding, self.w_sum.shape[3], real.shape[3])
        shared = F.conv2d(real + imag, self.w_sum, None, **kw)
        out_real = F.conv2d(imag, self.w_real, self.b_real, **kw).addcmul_(shared, self.scale_real)
        out_imag = F.conv2d(real, self.w_imag, self.b_imag, **kw).addcmul_(shared, self.scale_imag)
        return F.leaky_relu_(out_real[rows]), F.leaky_relu_(out_imag[rows])


class GaussConvTranspose(nn.Module):
    """Complex transposed conv (stride 2 along frequency) + folded BatchNorm + LeakyReLU, as two
    phases of ordinary convolutions (even and odd output rows), each in Gauss's form.

    oneDNN runs forward convolutions faster than transposed ones here; the phases are written into
    the strided halves of the output by the same multiply-add that applies the BatchNorm scale.
    """

    def __init__(self, tconv, bn: ComplexBatchNorm2d):
        super().__init__()
        part_re, part_im = tconv.tconv_re, tconv.tconv_im
        (self.freq_stride, _), (_, time_pad) = part_re.stride, part_re.padding
        _require_unit_time_stride(part_re, "the phase decomposition")
        wr, wi = part_re.weight.transpose(2, 3), part_im.weight.transpose(2, 3)  # [I, O, time, freq]
        scales = bn_affine(bn)
        kernels = gauss_products(wr, wi, scales, 1)
        self.kernel_time, self.kernel_freq = wr.shape[2], wr.shape[3]
        self.time_padding = self.kernel_time - 1 - time_pad
        # Output row s * j + p takes kernel rows p, p + s, ... applied to input rows j, j - 1, ...:
        # a forward convolution with those rows reversed (and time reversed), padded by their count - 1.
        self.phases = nn.ModuleList()
        for p in range(self.freq_stride):
            phase = nn.Module()
            phase.w_sum, phase.w_real, phase.w_imag = (
                frozen_channels_last(w[:, :, :, p :: self.freq_stride].flip(2, 3).transpose(0, 1)) for w in kernels
            )
            phase.freq_padding = phase.w_sum.shape[3] - 1
            self.phases.append(phase)
        self.b_real, self.b_imag = (frozen(b) for b in gauss_biases(part_re.bias, part_im.bias, scales))
        self.scale_real = frozen(scales[0][0].reshape(1, -1, 1, 1))
        self.scale_imag = frozen(scales[1][0].reshape(1, -1, 1, 1))

    def forward(self, real: torch.Tensor, imag: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None):
        """[B, I, T, H] pair -> [B, O, T + 2 pad - kt + 1, stride (H - 1) + kf] pair, written into `out` if given."""
        b, _, t, h = real.shape
        total = real + imag
        out_shape = (b, self.b_real.shape[0], t + 2 * self.time_padding - self.kernel_time + 1,
                     self.freq_stride * (h - 1) + self.kernel_freq)
        if out is None:
            out = (torch.empty(out_shape, dtype=real.dtype, device=real.device, memory_format=CHANNELS_LAST),
                   torch.empty(out_shape, dtype=real.dtype, device=real.device, memory_format=CHANNELS_LAST))
        elif tuple(out[0].shape) != out_shape:
            raise ValueError(f"out has shape {tuple(out[0].shape)}, the transposed conv gives {out_shape}")
        out_real, out_imag = out
        for p, phase in enumerate(self.phases):
            kw = dict(padding=(self.time_padding, phase.freq_padding))
            shared = F.conv2d(total, phase.w_sum, None, **kw)
            rows = (Ellipsis, slice(p, None, self.freq_stride))
            torch.addcmul(F.conv2d(imag, phase.w_real, self.b_real, **kw), shared, self.scale_real, out=out_real[rows])
            torch.addcmul(F.conv2d(real, phase.w_imag, self.b_imag, **kw), shared, self.scale_imag, out=out_imag[rows])
        return F.leaky_relu_(out_real), F.leaky_relu_(out_imag)


class SpectrumEncoder(nn.Module):
    """The first encoder (one complex input channel) as one matrix product over 2x5 patches.

    With one input channel a convolution library has no channels to vectorise over; the patches of
    the [B, T, F, 2] spectrum are small (20 values) and the product writes channels_last directly.
    """

    def __init__(self, conv, bn: ComplexBatchNorm2d):
        super().__init__()
        wr, wi = conv.conv_re.weight[:, 0], conv.conv_im.weight[:, 0]  # [O, freq, time]
        scales = bn_affine(bn)
        (scale_r, _), (scale_i, _) = scales
        # Rows ordered (time tap, freq tap, part) to match the patch layout.
        real = torch.stack([wr * scale_r[:, None, None], -wi * scale_r[:, None, None]], dim=-1)
        imag = torch.stack([wi * scale_i[:, None, None], wr * scale_i[:, None, None]], dim=-1)
        weight = torch.cat([real, imag])  # [2O, freq, time, part]
        self.weight = frozen(weight.permute(2, 1, 3, 0).reshape(-1, 2 * wr.shape[0]))
        self.bias = frozen(torch.cat(gauss_biases(conv.conv_re.bias, conv.conv_im.bias, scales)))
        (self.freq_stride, self.time_stride), (self.freq_pad, self.time_pad) = conv.conv_re.stride, conv.conv_re.padding
        _require_unit_time_stride(conv.conv_re, "the patch product")
        self.kernel_freq, self.kernel_time = wr.shape[1], wr.shape[2]

    def forward(self, spec: torch.Tensor):
        """[B, T, F, 2] -> [B, 2O, T + 2 pad - kt + 1, (F - kf) // stride + 1] (real, then imaginary channels)."""
        padded = F.pad(spec, (0, 0, 0, 0, self.time_pad, self.time_pad))
        b, t, f, _ = padded.shape
        t_out = t - self.kernel_time + 1
        h_out = (f - self.kernel_freq) // self.freq_stride + 1
        st_b, st_t, st_f, st_p = padded.stride()
        patches = padded.as_strided(
            (b, t_out, h_out, self.kernel_time, self.kernel_freq, 2),
            (st_b, st_t, self.freq_stride * st_f, st_t, st_f, st_p),
        ).reshape(-1, 2 * self.kernel_time * self.kernel_freq)
        rows = F.leaky_relu_(torch.addmm(self.bias, patches, self.weight))
        return rows.view(b, t_out, h_out, -1).permute(0, 3, 1, 2)


class MaskDecoder(nn.Module):
    """The last decoder (one complex output channel) as matrix products plus an overlap-add.

    Its output has one channel, so the products [B*T*H, I] x [I, 2 * taps] are cheap and the
    overlap-add of its 2x5 taps runs on a [B, T, F, 2] tensor: the mask layout itself. Its input, the
    decoder path and the first skip (the reference concatenates them), comes as two pairs: the largest
    activations of the network are at this level, and a concatenation buffer would hold both while the
    encoders run.
    """

    def __init__(self, tconv, bn: ComplexBatchNorm2d):
        super().__init__()
        wr, wi = tconv.tconv_re.weight, tconv.tconv_im.weight  # [I, O, freq, time]
        if wr.shape[1] != 1:
            raise ValueError("MaskDecoder has one complex output channel")
        scales = bn_affine(bn)
        (scale_r, _), (scale_i, _) = scales
        # Columns ordered (time tap, freq tap, part); `from_real` multiplies the real input, `from_imag` the imaginary.
        from_real = torch.stack([wr[:, 0] * scale_r, wi[:, 0] * scale_i], dim=-1)
        from_imag = torch.stack([-wi[:, 0] * scale_r, wr[:, 0] * scale_i], dim=-1)
        self.from_real = frozen(from_real.permute(0, 2, 1, 3).reshape(wr.shape[0], -1))
        self.from_imag = frozen(from_imag.permute(0, 2, 1, 3).reshape(wr.shape[0], -1))
        self.bias = frozen(torch.cat(gauss_biases(tconv.tconv_re.bias, tconv.tconv_im.bias, scales)))
        (self.freq_stride, _), (_, self.time_pad) = tconv.tconv_re.stride, tconv.tconv_re.padding
        _require_unit_time_stride(tconv.tconv_re, "the overlap-add")
        self.kernel_freq, self.kernel_time = wr.shape[2], wr.shape[3]

    def forward(self, path: tuple[torch.Tensor, torch.Tensor], skip: tuple[torch.Tensor, torch.Tensor]):
        """two pairs of [B, I / 2, T, H] -> [B, T + kt - 1 - 2 pad, stride (H - 1) + kf, 2]."""
        b, c, t, h = path[0].shape
        taps = torch.mm(row_view(path[0]), self.from_real[:c]).addmm_(row_view(path[1]), self.from_imag[:c])
        taps.addmm_(row_view(skip[0]), self.from_real[c:]).addmm_(row_view(skip[1]), self.from_imag[c:])
        taps = taps.view(b, t, h, self.kernel_time, self.kernel_freq, 2)
        t_out = t + self.kernel_time - 1 - 2 * self.time_pad
        f_out = self.freq_stride * (h - 1) + self.kernel_freq
        out = self.bias.expand(b, t_out, f_out, 2).contiguous()
        span = self.freq_stride * (h - 1) + 1
        for dt in range(self.kernel_time):
            # Output frame o takes input frame o + pad - dt.
            lo, hi = max(0, dt - self.time_pad), min(t_out, t + dt - self.time_pad)
            for df in range(self.kernel_freq):
                out[:, lo:hi, df : df + span : self.freq_stride] += taps[:, lo + self.time_pad - dt : hi + self.time_pad - dt, :, dt, df]
        return F.leaky_relu_(out)


class ComplexLinear(nn.Module):
    """The UNet's final 1x1 complex conv with one channel: a complex affine map on [..., 2]."""

    def __init__(self, conv):
        super().__init__()
        wr, wi = conv.conv_re.weight.reshape(()), conv.conv_im.weight.reshape(())
        br, bi = conv.conv_re.bias.reshape(()), conv.conv_im.bias.reshape(())
        self.matrix = frozen(torch.stack([torch.stack([wr, wi]), torch.stack([-wi, wr])]))  # x @ matrix
        self.bias = frozen(torch.stack([br - bi, br + bi]))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, 2), self.matrix).view(x.shape)

