"""The fused complex FSMN: four matrix products and one depthwise convolution per step of whole
sequences, on time-major pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import UniDeepFsmn
from .folding import frozen
from .layout import empty_pair_buffer, row_view

# Rows per FSMN step; its temporaries take 24 bytes per channel per row. On CPU small steps stay in
# cache (measured fastest from 1024 to 4096 rows on a 2-core AMD EPYC); on a GPU each step is a few
# kernel launches, so steps are large there and only bound the temporaries.
FSMN_CHUNK_ROWS = {"cpu": 2048}
FSMN_CHUNK_ROWS_DEFAULT = 1 << 20


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
        self.w1 = frozen(torch.cat([fsmn_re.linear.weight, fsmn_im.linear.weight]).t())  # [C, 2 hidden]
        self.b1 = frozen(torch.cat([fsmn_re.linear.bias, fsmn_im.linear.bias]))
        self.w2_re = frozen(fsmn_re.project.weight.t())  # [hidden, C]
        self.w2_im = frozen(fsmn_im.project.weight.t())
        self.w2_im_neg = frozen(-fsmn_im.project.weight.t())
        taps = torch.stack([fsmn_re.conv1.weight[:, 0, :, 0], fsmn_im.conv1.weight[:, 0, :, 0]], dim=-1)
        taps[:, -1] += 1.0
        taps = taps.reshape(taps.shape[0], 1, -1, 1)  # [C, 1, 2 order, 1], re and im taps interleaved
        self.taps = frozen(taps.transpose(2, 3))  # the sequence runs along the last axis

    def forward(self, real, imag, out: tuple[torch.Tensor, torch.Tensor] | None = None):
        """[B, C, T, H] pair -> pair of the same shape, written into `out` if given (`out` may be the
        input pair: each step reads its rows whole before writing them)."""
        b, c, t, h = real.shape
        if self.along_time and h != 1:
            raise ValueError("the time FSMN expects one frequency row")
        seq_len = t if self.along_time else h
        if out is None:
            out = (empty_pair_buffer(real, c), empty_pair_buffer(real, c))
        rows = [row_view(x) for x in (real, imag, *out)]
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

