"""The fused complex squeeze-excitation, on time-major pairs."""

from __future__ import annotations

import torch
from torch import nn


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

