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
"""

from __future__ import annotations

import copy
import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ComplexBatchNorm2d, UniDeepFsmn
from ..frcrn import FRCRN, UNet
from ..stft import FFTSTFT, stft_kernels

CHANNELS_LAST = torch.channels_last

# Rows per FSMN step; its temporaries take 24 bytes per channel per row. On CPU small steps stay in
# cache (measured fastest from 1024 to 4096 rows on a 2-core AMD EPYC); on a GPU each step is a few
# kernel launches, so steps are large there and only bound the temporaries.
FSMN_CHUNK_ROWS = {"cpu": 2048}
FSMN_CHUNK_ROWS_DEFAULT = 1 << 20


class InferenceOutput(NamedTuple):
    wav: torch.Tensor  # [B, samples], the stage-2 waveform (`wav_l2`)
    mask: torch.Tensor  # [B, 2F, frames], the stage-2 cIRM (`mask_l2`)
    wav_l1: torch.Tensor | None  # the stage-1 waveform, only when asked for


def _bn_affine(bn: ComplexBatchNorm2d):
    """(scale, shift) of the real and of the imaginary eval-mode BatchNorm, each [channels]."""
    pairs = []
    for part in (bn.bn_re, bn.bn_im):
        scale = part.weight / torch.sqrt(part.running_var + part.eps)
        pairs.append((scale, part.bias - part.running_mean * scale))
    return pairs


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone(), requires_grad=False)


def _frozen_cl(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(memory_format=CHANNELS_LAST), requires_grad=False)


def _gauss_products(wr, wi, scales, out_dim):
    """The three kernels of Gauss's form, the BatchNorm scales folded into the two unshared ones.

    With input a + ib and kernel Wr + iWi, t = Wr(a + b) is shared:
    real = t - (Wr + Wi) b, imaginary = t + (Wi - Wr) a.
    """
    shape = [1] * wr.dim()
    shape[out_dim] = -1
    (scale_r, _), (scale_i, _) = scales
    return wr, -(wr + wi) * scale_r.reshape(shape), (wi - wr) * scale_i.reshape(shape)


def _gauss_biases(br, bi, scales):
    (scale_r, shift_r), (scale_i, shift_i) = scales
    return scale_r * (br - bi) + shift_r, scale_i * (br + bi) + shift_i


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
        (scale_r, _), (scale_i, _) = scales = _bn_affine(bn)
        scale = torch.cat([scale_r, scale_i]).reshape(-1, 1, 1, 1)
        self.from_real = _frozen_cl(torch.cat([wr, wi]) * scale)
        self.from_imag = _frozen_cl(torch.cat([-wi, wr]) * scale)
        self.bias = _frozen(torch.cat(_gauss_biases(conv.conv_re.bias, conv.conv_im.bias, scales)))
        self.stride = tuple(reversed(conv.conv_re.stride))
        self.padding = tuple(reversed(conv.conv_re.padding))

    def forward(self, real: torch.Tensor, imag: torch.Tensor):
        """[B, I, T, H] pair -> [B, O, T', H'] pair (the halves of one stacked tensor)."""
        kw, rows = _conv_arguments(self.stride, self.padding, self.from_real.shape[3], real.shape[3])
        out = F.conv2d(real, self.from_real, self.bias, **kw)
        out += F.conv2d(imag, self.from_imag, None, **kw)
        return _halves(F.leaky_relu_(out[rows]))


class GaussConv(nn.Module):
    """Complex conv + folded BatchNorm + LeakyReLU in Gauss's form: three real convolutions, the
    BatchNorm scale of each part applied to the shared product in one multiply-add."""

    def __init__(self, conv, bn: ComplexBatchNorm2d):
        super().__init__()
        wr, wi = conv.conv_re.weight.transpose(2, 3), conv.conv_im.weight.transpose(2, 3)  # [O, I, time, freq]
        scales = _bn_affine(bn)
        self.w_sum, self.w_real, self.w_imag = (_frozen_cl(w) for w in _gauss_products(wr, wi, scales, 0))
        self.b_real, self.b_imag = (_frozen(b) for b in _gauss_biases(conv.conv_re.bias, conv.conv_im.bias, scales))
        self.scale_real = _frozen(scales[0][0].reshape(1, -1, 1, 1))
        self.scale_imag = _frozen(scales[1][0].reshape(1, -1, 1, 1))
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
        (self.freq_stride, time_stride), (freq_pad, time_pad) = part_re.stride, part_re.padding
        if time_stride != 1 or freq_pad != 0:
            raise ValueError("the phase decomposition expects time stride 1 and no frequency padding")
        wr, wi = part_re.weight.transpose(2, 3), part_im.weight.transpose(2, 3)  # [I, O, time, freq]
        scales = _bn_affine(bn)
        kernels = _gauss_products(wr, wi, scales, 1)
        self.kernel_time, self.kernel_freq = wr.shape[2], wr.shape[3]
        self.time_padding = self.kernel_time - 1 - time_pad
        # Output row s * j + p takes kernel rows p, p + s, ... applied to input rows j, j - 1, ...:
        # a forward convolution with those rows reversed (and time reversed), padded by their count - 1.
        self.phases = nn.ModuleList()
        for p in range(self.freq_stride):
            phase = nn.Module()
            phase.w_sum, phase.w_real, phase.w_imag = (
                _frozen_cl(w[:, :, :, p :: self.freq_stride].flip(2, 3).transpose(0, 1)) for w in kernels
            )
            phase.freq_padding = phase.w_sum.shape[3] - 1
            self.phases.append(phase)
        self.b_real, self.b_imag = (_frozen(b) for b in _gauss_biases(part_re.bias, part_im.bias, scales))
        self.scale_real = _frozen(scales[0][0].reshape(1, -1, 1, 1))
        self.scale_imag = _frozen(scales[1][0].reshape(1, -1, 1, 1))

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
        scales = _bn_affine(bn)
        (scale_r, _), (scale_i, _) = scales
        # Rows ordered (time tap, freq tap, part) to match the patch layout.
        real = torch.stack([wr * scale_r[:, None, None], -wi * scale_r[:, None, None]], dim=-1)
        imag = torch.stack([wi * scale_i[:, None, None], wr * scale_i[:, None, None]], dim=-1)
        weight = torch.cat([real, imag])  # [2O, freq, time, part]
        self.weight = _frozen(weight.permute(2, 1, 3, 0).reshape(-1, 2 * wr.shape[0]))
        self.bias = _frozen(torch.cat(_gauss_biases(conv.conv_re.bias, conv.conv_im.bias, scales)))
        (self.freq_stride, self.time_stride), (self.freq_pad, self.time_pad) = conv.conv_re.stride, conv.conv_re.padding
        if self.time_stride != 1 or self.freq_pad != 0:
            raise ValueError("the patch product expects time stride 1 and no frequency padding")
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
        scales = _bn_affine(bn)
        (scale_r, _), (scale_i, _) = scales
        # Columns ordered (time tap, freq tap, part); `from_real` multiplies the real input, `from_imag` the imaginary.
        from_real = torch.stack([wr[:, 0] * scale_r, wi[:, 0] * scale_i], dim=-1)
        from_imag = torch.stack([-wi[:, 0] * scale_r, wr[:, 0] * scale_i], dim=-1)
        self.from_real = _frozen(from_real.permute(0, 2, 1, 3).reshape(wr.shape[0], -1))
        self.from_imag = _frozen(from_imag.permute(0, 2, 1, 3).reshape(wr.shape[0], -1))
        self.bias = _frozen(torch.cat(_gauss_biases(tconv.tconv_re.bias, tconv.tconv_im.bias, scales)))
        (self.freq_stride, time_stride), (freq_pad, self.time_pad) = tconv.tconv_re.stride, tconv.tconv_re.padding
        if time_stride != 1 or freq_pad != 0:
            raise ValueError("the overlap-add expects time stride 1 and no frequency padding")
        self.kernel_freq, self.kernel_time = wr.shape[2], wr.shape[3]

    def forward(self, path: tuple[torch.Tensor, torch.Tensor], skip: tuple[torch.Tensor, torch.Tensor]):
        """two pairs of [B, I / 2, T, H] -> [B, T + kt - 1 - 2 pad, stride (H - 1) + kf, 2]."""
        b, c, t, h = path[0].shape
        taps = torch.mm(_rows(path[0]), self.from_real[:c]).addmm_(_rows(path[1]), self.from_imag[:c])
        taps.addmm_(_rows(skip[0]), self.from_real[c:]).addmm_(_rows(skip[1]), self.from_imag[c:])
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


def _empty_pair_buffer(x: torch.Tensor, channels: int) -> torch.Tensor:
    """An uninitialised [B, channels, T, H] channels_last tensor with x's batch, time, height."""
    b, _, t, h = x.shape
    return torch.empty(b, channels, t, h, dtype=x.dtype, device=x.device, memory_format=CHANNELS_LAST)


def _halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 2C, T, H] (real channels, then imaginary) -> the (real, imaginary) pair of views."""
    c = x.shape[1] // 2
    return x[:, :c], x[:, c:]


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H] channels_last -> its [B*T*H, C] row view (no copy)."""
    return x.permute(0, 2, 3, 1).view(-1, x.shape[1])


class ComplexFsmn(nn.Module):
    """One complex FSMN layer (`fsmn_re`, `fsmn_im`) on time-major pairs, recurring along H or T.

    fsmn(x) = x + p + memory(p) with p = W2 relu(W1 x + b); the identity is folded into the last
    (current-step) tap of the memory kernel. The four projections p_re(real), -p_im(imag),
    p_re(imag), p_im(real) are four matrix products into one buffer whose rows hold the two
    projections that meet in one output part side by side; read as a sequence twice as long, one
    depthwise convolution of stride 2 with the two memory kernels interleaved sums both.
    """

    def __init__(self, fsmn_re: UniDeepFsmn, fsmn_im: UniDeepFsmn, along_time: bool):
        super().__init__()
        self.hidden = fsmn_re.linear.out_features
        self.order = fsmn_re.order
        self.along_time = along_time
        self.w1 = _frozen(torch.cat([fsmn_re.linear.weight, fsmn_im.linear.weight]).t())  # [C, 2 hidden]
        self.b1 = _frozen(torch.cat([fsmn_re.linear.bias, fsmn_im.linear.bias]))
        self.w2_re = _frozen(fsmn_re.project.weight.t())  # [hidden, C]
        self.w2_im = _frozen(fsmn_im.project.weight.t())
        self.w2_im_neg = _frozen(-fsmn_im.project.weight.t())
        taps = torch.stack([fsmn_re.conv1.weight[:, 0, :, 0], fsmn_im.conv1.weight[:, 0, :, 0]], dim=-1)
        taps[:, -1] += 1.0
        taps = taps.reshape(taps.shape[0], 1, -1, 1)  # [C, 1, 2 order, 1], re and im taps interleaved
        self.taps = _frozen(taps.transpose(2, 3))  # the sequence runs along the last axis

    def forward(self, real, imag, out: tuple[torch.Tensor, torch.Tensor] | None = None):
        """[B, C, T, H] pair -> pair of the same shape, written into `out` if given (`out` may be the
        input pair: each step reads its rows whole before writing them)."""
        b, c, t, h = real.shape
        if self.along_time and h != 1:
            raise ValueError("the time FSMN expects one frequency row")
        seq_len = t if self.along_time else h
        if out is None:
            out = (_empty_pair_buffer(real, c), _empty_pair_buffer(real, c))
        rows = [_rows(x) for x in (real, imag, *out)]
        # Whole sequences at a time: the temporaries stay small (and in cache) whatever the input length.
        chunk = FSMN_CHUNK_ROWS.get(real.device.type, FSMN_CHUNK_ROWS_DEFAULT)
        step = max(1, chunk // seq_len) * seq_len
        for start in range(0, b * t * h, step):
            self._sequences(*(r[start : start + step] for r in rows), seq_len)
        return out

    def _sequences(self, real, imag, out_real, out_imag, seq_len: int) -> None:
        """Rows [M, C] holding M / seq_len whole sequences -> `out_real`, `out_imag` rows."""
        m, c = real.shape
        hid = self.hidden
        h_real = torch.addmm(self.b1, real, self.w1).relu_()  # [p_re(real) | p_im(real)] hidden
        h_imag = torch.addmm(self.b1, imag, self.w1).relu_()  # [p_re(imag) | p_im(imag)] hidden
        proj = real.new_empty(2, m, 2 * c)
        torch.mm(h_real[:, :hid], self.w2_re, out=proj[0, :, :c])
        torch.mm(h_imag[:, hid:], self.w2_im_neg, out=proj[0, :, c:])
        torch.mm(h_imag[:, :hid], self.w2_re, out=proj[1, :, :c])
        torch.mm(h_real[:, hid:], self.w2_im, out=proj[1, :, c:])
        del h_real, h_imag
        groups = m // seq_len
        seq = proj.view(2, groups, 2 * seq_len, c).permute(0, 3, 1, 2)  # [2, C, groups, 2 seq_len]
        reach = 2 * (self.order - 1)
        memory = F.conv2d(seq, self.taps, stride=(1, 2), padding=(0, reach), groups=c)[..., :seq_len]
        memory = memory.permute(0, 2, 3, 1)  # [2, groups, seq_len, C]
        total = real + imag  # before out_real is written: the output may be the input itself
        torch.sub(real, imag, out=out_real).view(groups, seq_len, c).add_(memory[0])
        torch.add(total.view(groups, seq_len, c), memory[1], out=out_imag.view(groups, seq_len, c))


class SqueezeExcite(nn.Module):
    """`ComplexSELayer` on time-major pairs: each part is gated by its own channel gate."""

    def __init__(self, block):
        super().__init__()
        self.fc_r, self.fc_i = block.fc_r, block.fc_i

    def forward(self, real, imag, out: tuple[torch.Tensor, torch.Tensor] | None = None):
        means = torch.cat([real.mean(dim=(2, 3)), imag.mean(dim=(2, 3))])  # [2B, C]
        r_r, r_i = self.fc_r(means).chunk(2)
        i_r, i_i = self.fc_i(means).chunk(2)
        out_real, out_imag = out if out is not None else (None, None)
        out_real = torch.mul(real, (r_r - i_i)[:, :, None, None], out=out_real)
        out_imag = torch.mul(imag, (r_i + i_r)[:, :, None, None], out=out_imag)
        return out_real, out_imag


class ComplexLinear(nn.Module):
    """The UNet's final 1x1 complex conv with one channel: a complex affine map on [..., 2]."""

    def __init__(self, conv):
        super().__init__()
        wr, wi = conv.conv_re.weight.reshape(()), conv.conv_im.weight.reshape(())
        br, bi = conv.conv_re.bias.reshape(()), conv.conv_im.bias.reshape(())
        self.matrix = _frozen(torch.stack([torch.stack([wr, wi]), torch.stack([-wi, wr])]))  # x @ matrix
        self.bias = _frozen(torch.stack([br - bi, br + bi]))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, 2), self.matrix).view(x.shape)


class FusedUNet(nn.Module):
    """`UNet` on a time-major spectrum: [B, T, F, 2] (real, imaginary) -> the same (pre-tanh mask)."""

    def __init__(self, unet: UNet, gauss_encoders: bool):
        super().__init__()
        self.levels = levels = unet.levels
        block = unet.block

        def fsmn(name, i, along_time=False):
            layer = block(name, i)
            return ComplexFsmn(layer.fsmn_re_L1, layer.fsmn_im_L1, along_time)

        self.encoder0 = SpectrumEncoder(unet.encoder0.conv, unet.encoder0.bn)
        self.fsmn_enc = nn.ModuleList([fsmn("fsmn_enc", i) for i in range(1, levels)])
        self.encoders = nn.ModuleList(
            [
                (GaussConv if gauss_encoders else EncoderConv)(block("encoder", i).conv, block("encoder", i).bn)
                for i in range(1, levels)
            ]
        )
        self.se_enc = nn.ModuleList([SqueezeExcite(block("se_layer_enc", i)) for i in range(levels - 1)])
        bottleneck = unet.fsmn
        self.fsmn = nn.ModuleList(
            [
                ComplexFsmn(bottleneck.fsmn_re_L1, bottleneck.fsmn_im_L1, along_time=True),
                ComplexFsmn(bottleneck.fsmn_re_L2, bottleneck.fsmn_im_L2, along_time=True),
            ]
        )
        self.decoders = nn.ModuleList(
            [GaussConvTranspose(block("decoder", i).transconv, block("decoder", i).bn) for i in range(levels - 1)]
        )
        last = block("decoder", levels - 1)
        self.mask_decoder = MaskDecoder(last.transconv, last.bn)
        self.fsmn_dec = nn.ModuleList([fsmn("fsmn_dec", i) for i in range(levels - 1)])
        self.se_dec = nn.ModuleList([SqueezeExcite(block("se_layer_dec", i)) for i in range(levels - 2)])
        self.linear = ComplexLinear(unet.linear)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        # Peak memory is set at the first level (the widest): its skip, the encoder output and the next
        # level's output. So the FSMNs run in place, and the first skip stays apart from the decoder
        # path (see MaskDecoder). Deeper decoders read [their own path | skip] along channels: each of
        # those buffers is allocated when its skip is made, the skip written into the upper half, and
        # the decoder, its FSMN and its squeeze-excitation later write the lower half in place.
        skips = []
        real, imag = _halves(self.encoder0(spec))
        for i in range(self.levels):
            if i > 0:
                self.fsmn_enc[i - 1](real, imag, out=(real, imag))  # the skip is taken: x is needed no more
                real, imag = self.encoders[i - 1](real, imag)
            if i == 0:
                c = real.shape[1]
                skips.append(self.se_enc[0](real, imag, out=(_empty_pair_buffer(real, c), _empty_pair_buffer(real, c))))
            elif i < self.levels - 1:  # the deepest encoder's squeeze-excitation feeds no skip
                c = real.shape[1]
                pair = (_empty_pair_buffer(real, 2 * c), _empty_pair_buffer(real, 2 * c))
                self.se_enc[i](real, imag, out=(pair[0][:, c:], pair[1][:, c:]))
                skips.append(pair)
        # The bottleneck FSMN sees features C * H with H = 1: its sequence is time.
        for layer in self.fsmn:
            real, imag = layer(real, imag)
        for i in range(self.levels - 2):
            pair = skips.pop()
            c = pair[0].shape[1] // 2
            lower = (pair[0][:, :c], pair[1][:, :c])
            self.decoders[i](real, imag, out=lower)
            self.fsmn_dec[i](*lower, out=lower)
            self.se_dec[i](*lower, out=lower)
            real, imag = pair
        real, imag = self.decoders[-1](real, imag)
        self.fsmn_dec[-1](real, imag, out=(real, imag))
        return self.linear(self.mask_decoder((real, imag), skips.pop()))


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


@functools.cache
def _fft_matches(model: FRCRN) -> bool:
    """The FFT path is used only where it reproduces the checkpoint's own STFT kernels."""
    config = model.config
    if config.win_len != config.fft_len:
        return False
    analytic = stft_kernels(config.win_len, config.fft_len, config.win_type)
    state = model.state_dict()
    return all(torch.allclose(state[name].cpu().float(), value, atol=1e-6) for name, value in analytic.items())
