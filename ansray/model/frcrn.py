"""FRCRN: Frequency Recurrence Convolutional Recurrent Network for monaural speech enhancement.

Zhao et al., "FRCRN: Boosting Feature Representation using Frequency Recurrence for Monaural Speech
Enhancement", ICASSP 2022. Numerically equal to ModelScope's `modelscope/models/audio/ans/frcrn.py`
(and its `unet.py`): two complex UNets in cascade predict a complex ideal ratio mask (cIRM) that is
applied to the STFT of the input; the second UNet refines the first one's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .blocks import ComplexConv2d, ComplexFsmnFreq, ComplexFsmnTime, ComplexSELayer, Decoder, Encoder
from .config import ENCODER_FREQ_KERNEL, FREQ_STRIDE, FRCRNConfig
from .stft import ConvISTFT, ConvSTFT, stft_kernels

# Every UNet conv spans 2 frames with one frame of padding on each side; stride 2 along frequency.
TIME_KERNEL = 2
STRIDE = (FREQ_STRIDE, 1)
PADDING = (0, 1)
SE_REDUCTION = 8


class FRCRNOutput(NamedTuple):
    """The reference's output list, named. Spectra and masks are [B, 2F, frames] (real rows, then
    imaginary rows); waveforms are [B, (frames - 1) * win_inc + win_len]."""

    spec_l1: torch.Tensor
    wav_l1: torch.Tensor
    mask_l1: torch.Tensor
    spec_l2: torch.Tensor
    wav_l2: torch.Tensor
    mask_l2: torch.Tensor


@dataclass(frozen=True)
class UNetLayout:
    """Channel counts and kernel heights of one UNet, and which of its blocks run at each level.
    `heights[i]` is the input height of encoder i.

    The reference registers a frequency FSMN and a squeeze-excitation beside every encoder and every
    decoder but the last, and its forward pass skips some of them. The predicates below say which run;
    `UNet`, the fused UNet and training's `unused_parameters` all read them.
    """

    channels: int
    heights: tuple[int, ...]
    encoder_kernels: tuple[int, ...]
    decoder_kernels: tuple[int, ...]

    @property
    def levels(self) -> int:
        return len(self.encoder_kernels)

    def runs_encoder_fsmn(self, i: int) -> bool:
        """Encoder i is preceded by `fsmn_enc{i}`, except the first, which reads the spectrum itself."""
        return i > 0

    def runs_skip_se(self, i: int) -> bool:
        """`se_layer_enc{i}` makes encoder i's skip; the deepest encoder feeds the bottleneck, not a skip."""
        return i < self.levels - 1

    def runs_decoder_fsmn(self, i: int) -> bool:
        """Decoder i is followed by `fsmn_dec{i}`, except the last, which makes the mask."""
        return i < self.levels - 1

    def runs_decoder_se(self, i: int) -> bool:
        """`se_layer_dec{i}` (registered for every decoder but the last) runs for all but the last two."""
        return i < self.levels - 2

    def unused_blocks(self) -> tuple[str, ...]:
        """Names of the registered blocks that never run; they exist so that checkpoints load strictly."""
        unused = []
        for i in range(self.levels):
            if not self.runs_encoder_fsmn(i):
                unused.append(f"fsmn_enc{i}")
            if not self.runs_skip_se(i):
                unused.append(f"se_layer_enc{i}")
            if not self.runs_decoder_fsmn(i):
                unused.append(f"fsmn_dec{i}")
            if i < self.levels - 1 and not self.runs_decoder_se(i):
                unused.append(f"se_layer_dec{i}")
        return tuple(unused)


def unet_layout(config: FRCRNConfig) -> UNetLayout:
    """Kernel heights that take F bins down to 1 and back up exactly.

    For the released config this reproduces the reference's table: encoders (5, 5, 5, 5, 5, 5, 2),
    decoders (2, 5, 5, 5, 6, 5, 5) over heights 321, 159, 78, 37, 17, 7, 2, 1.
    """
    heights = config.unet_heights  # the config has checked that its depth fits its fft_len
    levels = len(heights) - 1
    encoder_kernels = [ENCODER_FREQ_KERNEL] * (levels - 1) + [heights[levels - 1]]
    # A transposed conv outputs (h - 1) * stride + kernel rows; pick the kernel that restores the skip's height.
    decoder_kernels = [heights[levels - 1 - i] - (heights[levels - i] - 1) * STRIDE[0] for i in range(levels)]
    return UNetLayout(config.channels, tuple(heights), tuple(encoder_kernels), tuple(decoder_kernels))


class UNet(nn.Module):
    """One complex UNet: [B, 1, F, T, 2] -> [B, 1, F, T, 2] (pre-tanh mask).

    Each level's encoder may be preceded by a frequency FSMN and its output passes a squeeze-excitation
    on its way to the skip connection; a time FSMN sits at the bottleneck; each decoder may be followed
    by a frequency FSMN and a squeeze-excitation before concatenating its skip. Which of these run is
    the layout's to say (`UNetLayout.runs_*`).
    """

    def __init__(self, layout: UNetLayout):
        super().__init__()
        width, levels = layout.channels, layout.levels
        self.layout = layout
        self.levels = levels
        self.fsmn = ComplexFsmnTime(width, width)
        # Registration order follows the reference so that state_dict() lists keys in the same order.
        for i in range(levels):
            self.add_module(f"fsmn_enc{i}", ComplexFsmnFreq(width, width))
            in_channels = 1 if i == 0 else width
            kernel = (layout.encoder_kernels[i], TIME_KERNEL)
            self.add_module(f"encoder{i}", Encoder(in_channels, width, kernel, STRIDE, PADDING))
            self.add_module(f"se_layer_enc{i}", ComplexSELayer(width, SE_REDUCTION))
        for i in range(levels):
            self.add_module(f"fsmn_dec{i}", ComplexFsmnFreq(width, width))
            in_channels = width if i == 0 else 2 * width
            out_channels = 1 if i == levels - 1 else width
            kernel = (layout.decoder_kernels[i], TIME_KERNEL)
            self.add_module(f"decoder{i}", Decoder(in_channels, out_channels, kernel, STRIDE, PADDING))
            if i < levels - 1:
                self.add_module(f"se_layer_dec{i}", ComplexSELayer(width, SE_REDUCTION))
        self.linear = ComplexConv2d(1, 1, 1)

    def block(self, name: str, i: int) -> nn.Module:
        return getattr(self, f"{name}{i}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = self.layout
        skips = []
        for i in range(self.levels):
            if layout.runs_encoder_fsmn(i):
                x = self.block("fsmn_enc", i)(x)
            x = self.block("encoder", i)(x)
            if layout.runs_skip_se(i):
                skips.append(self.block("se_layer_enc", i)(x))
        p = self.fsmn(x)
        for i in range(self.levels):
            p = self.block("decoder", i)(p)
            if layout.runs_decoder_fsmn(i):
                p = self.block("fsmn_dec", i)(p)
            if layout.runs_decoder_se(i):
                p = self.block("se_layer_dec", i)(p)
            if skips:  # every decoder but the last concatenates its mirror encoder's skip
                p = torch.cat([p, skips.pop()], dim=1)
        return self.linear(p)


def apply_mask(spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Complex product of [B, 1, F, T, 2] tensors, returned as [B, 2F, T] (real rows, then imaginary)."""
    sr, si = spec[..., 0], spec[..., 1]
    mr, mi = mask[..., 0], mask[..., 1]
    return torch.cat([sr * mr - si * mi, sr * mi + si * mr], dim=2).squeeze(1)


def stack_complex(x: torch.Tensor) -> torch.Tensor:
    """[B, 1, F, T, 2] -> [B, 2F, T]."""
    return torch.cat([x[..., 0], x[..., 1]], dim=2).squeeze(1)


class FRCRN(nn.Module):
    """The reference network. `forward(wav [B, T])` returns `FRCRNOutput`, in train or eval mode."""

    def __init__(self, config: FRCRNConfig | None = None):
        super().__init__()
        self.config = config = config or FRCRNConfig()
        kernels = stft_kernels(config.win_len, config.fft_len, config.win_type)
        self.stft = ConvSTFT(kernels["stft.weight"], config.win_inc)
        self.istft = ConvISTFT(
            kernels["istft.weight"], kernels["istft.window"], kernels["istft.enframe"], config.win_inc
        )
        self.layout = unet_layout(config)
        self.unet = UNet(self.layout)
        self.unet2 = UNet(self.layout)

    def spectrum(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] -> [B, 1, F, frames, 2], the UNet input layout."""
        spec = self.stft(wav)
        bins = self.config.freq_bins
        return torch.stack([spec[:, :bins], spec[:, bins:]], dim=-1).unsqueeze(1)

    def forward(self, wav: torch.Tensor) -> FRCRNOutput:
        spec = self.spectrum(wav)
        unet1_out = self.unet(spec)
        mask1 = torch.tanh(unet1_out)
        # The second UNet refines the first one's pre-tanh output; its mask is added to the first.
        mask2 = torch.tanh(self.unet2(unet1_out)) + mask1
        spec1, spec2 = apply_mask(spec, mask1), apply_mask(spec, mask2)
        return FRCRNOutput(
            spec1, self.istft(spec1), stack_complex(mask1), spec2, self.istft(spec2), stack_complex(mask2)
        )
