"""The fused path's activation layout: a complex feature map is a (real, imaginary) pair of
[B, C, T, H] tensors in channels_last memory, i.e. [B, T, H, C] physically."""

from __future__ import annotations

import torch

CHANNELS_LAST = torch.channels_last


def empty_pair_buffer(x: torch.Tensor, channels: int) -> torch.Tensor:
    """An uninitialised [B, channels, T, H] channels_last tensor with x's batch, time, height."""
    b, _, t, h = x.shape
    return torch.empty(b, channels, t, h, dtype=x.dtype, device=x.device, memory_format=CHANNELS_LAST)


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 2C, T, H] (real channels, then imaginary) -> the (real, imaginary) pair of views."""
    c = x.shape[1] // 2
    return x[:, :c], x[:, c:]


def row_view(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H] channels_last -> its [B*T*H, C] row view (no copy)."""
    return x.permute(0, 2, 3, 1).view(-1, x.shape[1])

