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
        self.layout = layout = unet.layout
        self.levels = levels = layout.levels
        block = unet.block
        every_level = range(levels)

        def fsmn(name, i, along_time=False):
            layer = block(name, i)
            return ComplexFsmn(layer.fsmn_re_L1, layer.fsmn_im_L1, along_time)

        def encoder(i):
            conv = GaussConv if gauss_encoders else EncoderConv
            return conv(block("encoder", i).conv, block("encoder", i).bn)

        def decoder(i):
            return GaussConvTranspose(block("decoder", i).transconv, block("decoder", i).bn)

        # The first encoder reads the spectrum and the last decoder makes the mask, each with a kernel of
        # its own; the blocks around the others are keyed by level, as the layout says they run.
        self.encoder0 = SpectrumEncoder(unet.encoder0.conv, unet.encoder0.bn)
        self.encoders = nn.ModuleList([encoder(i) for i in range(1, levels)])
        self.fsmn_enc = nn.ModuleDict({str(i): fsmn("fsmn_enc", i) for i in every_level if layout.runs_encoder_fsmn(i)})
        self.se_enc = nn.ModuleDict(
            {str(i): SqueezeExcite(block("se_layer_enc", i)) for i in every_level if layout.runs_skip_se(i)}
        )
        bottleneck = unet.fsmn
        self.fsmn = nn.ModuleList(
            [
                ComplexFsmn(bottleneck.fsmn_re_L1, bottleneck.fsmn_im_L1, along_time=True),
                ComplexFsmn(bottleneck.fsmn_re_L2, bottleneck.fsmn_im_L2, along_time=True),
            ]
        )
        self.decoders = nn.ModuleList([decoder(i) for i in range(levels - 1)])
        last = block("decoder", levels - 1)
        self.mask_decoder = MaskDecoder(last.transconv, last.bn)
        self.fsmn_dec = nn.ModuleDict({str(i): fsmn("fsmn_dec", i) for i in every_level if layout.runs_decoder_fsmn(i)})
        self.se_dec = nn.ModuleDict(
            {str(i): SqueezeExcite(block("se_layer_dec", i)) for i in every_level if layout.runs_decoder_se(i)}
        )
        self.linear = ComplexLinear(unet.linear)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        # Peak memory is set at the first level (the widest): its skip, the encoder output and the next
        # level's output. So the FSMNs run in place, and the first skip stays apart from the decoder
        # path (see MaskDecoder). Deeper decoders read [their own path | skip] along channels: each of
        # those buffers is allocated when its skip is made, the skip written into the upper half, and
        # the decoder, its FSMN and its squeeze-excitation later write the lower half in place.
        layout = self.layout
        skips = []
        real, imag = halves(self.encoder0(spec))
        for i in range(self.levels):
            if i > 0:
                if layout.runs_encoder_fsmn(i):
                    self.fsmn_enc[str(i)](real, imag, out=(real, imag))  # the skip is taken: x is needed no more
                real, imag = self.encoders[i - 1](real, imag)
            if not layout.runs_skip_se(i):
                continue
            c = real.shape[1]
            if i == 0:
                skip = (empty_pair_buffer(real, c), empty_pair_buffer(real, c))
                skips.append(self.se_enc[str(i)](real, imag, out=skip))
            else:
                pair = (empty_pair_buffer(real, 2 * c), empty_pair_buffer(real, 2 * c))
                self.se_enc[str(i)](real, imag, out=(pair[0][:, c:], pair[1][:, c:]))
                skips.append(pair)
        # The bottleneck FSMN sees features C * H with H = 1: its sequence is time.
        for layer in self.fsmn:
            real, imag = layer(real, imag)
        for i in range(self.levels - 1):
            if len(skips) > 1:  # a deeper skip: decode into its buffer's lower half
                pair = skips.pop()
                c = pair[0].shape[1] // 2
                path = (pair[0][:, :c], pair[1][:, :c])
                self.decoders[i](real, imag, out=path)
            else:
                pair = path = self.decoders[i](real, imag)
            if layout.runs_decoder_fsmn(i):
                self.fsmn_dec[str(i)](*path, out=path)
            if layout.runs_decoder_se(i):
                self.se_dec[str(i)](*path, out=path)
            real, imag = pair
        return self.linear(self.mask_decoder((real, imag), skips.pop()))
