"""FRCRN's building blocks, in the reference's tensor layout [B, C, H(freq), T, 2(real, imag)].

Module and attribute names follow ModelScope's `complex_nn.py`, `se_module_complex.py` and
`layers/uni_deep_fsmn.py`, so that `state_dict()` keys equal the released checkpoints' keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# FSMN memory length (taps) in every FRCRN FSMN layer.
FSMN_ORDER = 20


class ComplexConv2d(nn.Module):
    """(a + ib) * (Wr + iWi) = (Wr a - Wi b) + i(Wr b + Wi a), each bias included once per conv."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv_re = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.conv_im = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

    def forward(self, x):
        real = self.conv_re(x[..., 0]) - self.conv_im(x[..., 1])
        imag = self.conv_re(x[..., 1]) + self.conv_im(x[..., 0])
        return torch.stack((real, imag), dim=-1)


class ComplexConvTranspose2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.tconv_re = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.tconv_im = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

    def forward(self, x):
        real = self.tconv_re(x[..., 0]) - self.tconv_im(x[..., 1])
        imag = self.tconv_re(x[..., 1]) + self.tconv_im(x[..., 0])
        return torch.stack((real, imag), dim=-1)


class ComplexBatchNorm2d(nn.Module):
    """Not a whitening complex BatchNorm: the reference normalises real and imaginary parts separately."""

    def __init__(self, num_features):
        super().__init__()
        self.bn_re = nn.BatchNorm2d(num_features)
        self.bn_im = nn.BatchNorm2d(num_features)

    def forward(self, x):
        return torch.stack((self.bn_re(x[..., 0]), self.bn_im(x[..., 1])), dim=-1)


class UniDeepFsmn(nn.Module):
    """Unidirectional FSMN over [N, L, D]: x + p + causal depthwise memory over p, p = W2 relu(W1 x + b)."""

    def __init__(self, input_dim, output_dim, order, hidden_size):
        super().__init__()
        self.order = order
        self.linear = nn.Linear(input_dim, hidden_size)
        self.project = nn.Linear(hidden_size, output_dim, bias=False)
        self.conv1 = nn.Conv2d(output_dim, output_dim, [order, 1], groups=output_dim, bias=False)

    def forward(self, x):
        p = self.project(F.relu(self.linear(x)))
        p = p.transpose(1, 2).unsqueeze(-1)  # [N, D, L, 1]
        memory = self.conv1(F.pad(p, [0, 0, self.order - 1, 0]))
        return x + (p + memory).squeeze(-1).transpose(1, 2)


def _complex_fsmn(fsmn_re, fsmn_im, real, imag):
    return fsmn_re(real) - fsmn_im(imag), fsmn_re(imag) + fsmn_im(real)


class ComplexFsmnTime(nn.Module):
    """The bottleneck: two complex FSMN layers recurring over time, on features C * H."""

    def __init__(self, features, hidden):
        super().__init__()
        self.fsmn_re_L1 = UniDeepFsmn(features, hidden, FSMN_ORDER, hidden)
        self.fsmn_im_L1 = UniDeepFsmn(features, hidden, FSMN_ORDER, hidden)
        self.fsmn_re_L2 = UniDeepFsmn(hidden, features, FSMN_ORDER, hidden)
        self.fsmn_im_L2 = UniDeepFsmn(hidden, features, FSMN_ORDER, hidden)

    def forward(self, x):
        b, c, h, t, _ = x.shape
        x = x.reshape(b, c * h, t, 2).transpose(1, 2)  # [B, T, C*H, 2]
        real, imag = _complex_fsmn(self.fsmn_re_L1, self.fsmn_im_L1, x[..., 0], x[..., 1])
        real, imag = _complex_fsmn(self.fsmn_re_L2, self.fsmn_im_L2, real, imag)
        out = torch.stack((real, imag), dim=-1).transpose(1, 2)
        return out.reshape(b, c, h, t, 2)


class ComplexFsmnFreq(nn.Module):
    """One complex FSMN layer recurring along frequency (the "frequency recurrence" of FRCRN)."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.fsmn_re_L1 = UniDeepFsmn(channels, hidden, FSMN_ORDER, hidden)
        self.fsmn_im_L1 = UniDeepFsmn(channels, hidden, FSMN_ORDER, hidden)

    def forward(self, x):
        b, c, h, t, _ = x.shape
        x = x.transpose(1, 3).reshape(b * t, h, c, 2)  # sequence = frequency, features = channels
        real, imag = _complex_fsmn(self.fsmn_re_L1, self.fsmn_im_L1, x[..., 0], x[..., 1])
        out = torch.stack((real, imag), dim=-1).reshape(b, t, h, c, 2)
        return out.transpose(1, 3)


class ComplexSELayer(nn.Module):
    """Squeeze-excitation with a complex-style gate; the average is over the whole input (non-causal)."""

    def __init__(self, channels, reduction=8):
        super().__init__()
        hidden = channels // reduction
        self.fc_r = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())
        self.fc_i = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x):
        mean = x.mean(dim=(2, 3))  # [B, C, 2]
        x_r, x_i = mean[..., 0], mean[..., 1]
        gate_r = self.fc_r(x_r) - self.fc_i(x_i)
        gate_i = self.fc_r(x_i) + self.fc_i(x_r)
        gate = torch.stack((gate_r, gate_i), dim=-1)[:, :, None, None, :]
        return x * gate


class Encoder(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding):
        super().__init__()
        self.conv = ComplexConv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.bn = ComplexBatchNorm2d(out_channels)

    def forward(self, x):
        return F.leaky_relu(self.bn(self.conv(x)))


class Decoder(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding):
        super().__init__()
        self.transconv = ComplexConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding)
        self.bn = ComplexBatchNorm2d(out_channels)

    def forward(self, x):
        return F.leaky_relu(self.bn(self.transconv(x)))
