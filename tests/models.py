"""Small FRCRN models for tests: random weights, shifted to keep their input's polarity, as the denoise job
requires of every model."""

import torch

from ansray.model import FRCRN, MODEL_SIZES, save_model_dir
from ansray.model.polarity import keep_polarity


def tiny_model(seed: int = 0) -> FRCRN:
    torch.manual_seed(seed)
    return keep_polarity(FRCRN(MODEL_SIZES["tiny"]).eval())


def save_tiny_model(folder, seed: int = 0) -> str:
    save_model_dir(tiny_model(seed), str(folder))
    return str(folder)


def constant_mask_model(gain: float) -> FRCRN:
    """A tiny FRCRN whose mask is `gain` everywhere (|gain| < 2): its output is `gain` times its input, away
    from the edges. All weights are zero, so each UNet outputs its last layer's bias."""
    model = FRCRN(MODEL_SIZES["tiny"]).eval()
    half = float(torch.atanh(torch.tensor(gain / 2)))  # each UNet adds tanh(half) to the mask
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for unet in (model.unet, model.unet2):
            unet.linear.conv_re.bias.fill_(half / 2)
            unet.linear.conv_im.bias.fill_(-half / 2)
    return model
