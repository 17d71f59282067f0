"""Running FRCRN's fused inference network on a batch of 16 kHz segments: the step that `ansray.enhance`
and the denoise job's actors share."""

from __future__ import annotations

import numpy as np
import torch

from ansray.precision import autocast

from .checkpoint import load_model
from .frcrn import FRCRN
from .fused import FRCRNInference


def inference_model(model: FRCRN | FRCRNInference | str, device: str | torch.device = "cpu") -> FRCRNInference:
    """The fused inference network from a model, an inference network, or anything `load_model` takes."""
    if isinstance(model, FRCRNInference):
        return model
    if not isinstance(model, FRCRN):
        model = load_model(model, device=device)
    return FRCRNInference.from_model(model)


def enhance_batch(model: FRCRNInference, batch: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """[B, S] float32 at 16 kHz -> [B, S] enhanced, float32. Lengths are multiples of the STFT hop.

    `dtype` is a precision of `ansray.precision` (float32, bfloat16, float16)."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if device.type == "cuda":
            inputs = inputs.pin_memory().to(device, non_blocking=True)
        with autocast(device, dtype):
            out = model(inputs).wav
        return out.float().cpu().numpy()
