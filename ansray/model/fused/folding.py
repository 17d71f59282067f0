"""Weight folding for the fused path: eval-mode BatchNorm as a per-channel affine map, Gauss's
three-product form of a complex kernel, and the frozen copies the fused modules hold."""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import ComplexBatchNorm2d
from .layout import CHANNELS_LAST


def bn_affine(bn: ComplexBatchNorm2d):
    """(scale, shift) of the real and of the imaginary eval-mode BatchNorm, each [channels]."""
    pairs = []
    for part in (bn.bn_re, bn.bn_im):
        scale = part.weight / torch.sqrt(part.running_var + part.eps)
        pairs.append((scale, part.bias - part.running_mean * scale))
    return pairs


def frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone(), requires_grad=False)


def frozen_channels_last(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(memory_format=CHANNELS_LAST), requires_grad=False)


def gauss_products(wr, wi, scales, out_dim):
    """The three kernels of Gauss's form, the BatchNorm scales folded into the two unshared ones.

    With input a + ib and kernel Wr + iWi, t = Wr(a + b) is shared:
    real = t - (Wr + Wi) b, imaginary = t + (Wi - Wr) a.
    """
    shape = [1] * wr.dim()
    shape[out_dim] = -1
    (scale_r, _), (scale_i, _) = scales
    return wr, -(wr + wi) * scale_r.reshape(shape), (wi - wr) * scale_i.reshape(shape)


def gauss_biases(br, bi, scales):
    (scale_r, shift_r), (scale_i, shift_i) = scales
    return scale_r * (br - bi) + shift_r, scale_i * (br + bi) + shift_i

