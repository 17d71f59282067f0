"""The reference pipeline's arithmetic, the baseline of benchmarks/bench_inference.py and bench_gpu.py:
unfused FRCRN, fp32, batch 1, the whole file in one pass.

ModelScope's ANS pipeline (`ans_pipeline.py`, files up to 120 s) level-normalises the waveform, pads its
end, runs `FRCRN.forward` once over all of it and keeps `wav_l2`. `ansray.model.FRCRN` is that network
written out op for op (complex convolutions as pairs of real ones, unfolded BatchNorm, the 640x642
conv-kernel STFT, the stage-1 waveform synthesised too) and reproduces the reference's numbers
(tests/test_model_parity.py); this module adds only the pipeline around it. The level is normalised
with ansray's `level_gains` (ModelScope's `audio_norm`) and restored, as `ansray.enhance` does, so the
two outputs differ only by arithmetic and segmenting.
"""

from __future__ import annotations

import numpy as np
import torch

from ansray.level import level_gains
from ansray.model import FRCRN
from ansray.segments import MODEL_HOP, MODEL_WINDOW


def reference_enhance(model: FRCRN, signal: np.ndarray) -> np.ndarray:
    """[samples] float32 at 16 kHz -> [samples] enhanced, in one pass of the unfused network on its device."""
    gain = float(level_gains(signal[:, None])[0])
    length = max(len(signal), MODEL_WINDOW)
    padded = np.zeros(-(-length // MODEL_HOP) * MODEL_HOP, dtype=np.float32)
    padded[: len(signal)] = signal * gain
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(torch.from_numpy(padded)[None].to(device)).wav_l2[0].cpu().numpy()
    return out[: len(signal)] / gain
