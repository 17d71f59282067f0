"""One fused FRCRN UNet: encoders, FSMNs and squeeze-excitations on time-major pairs, with the
skips written in place."""

from __future__ import annotations

import torch
from torch import nn

from ..frcrn import UNet
from .convolutions import ComplexLinear, EncoderConv, GaussConv, GaussConvTranspose, MaskDecoder, SpectrumEncoder
from .fsmn import ComplexFsmn
from .layout import empty_pair_buffer, halves
from .squeeze_excite import SqueezeExcite


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
        real, imag = halves(self.encoder0(spec))
        for i in range(self.levels):
            if i > 0:
                self.fsmn_enc[i - 1](real, imag, out=(real, imag))  # the skip is taken: x is needed no more
                real, imag = self.encoders[i - 1](real, imag)
            if i == 0:
                c = real.shape[1]
                skips.append(self.se_enc[0](real, imag, out=(empty_pair_buffer(real, c), empty_pair_buffer(real, c))))
            elif i < self.levels - 1:  # the deepest encoder's squeeze-excitation feeds no skip
                c = real.shape[1]
                pair = (empty_pair_buffer(real, 2 * c), empty_pair_buffer(real, 2 * c))
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

