"""Whether a model keeps its input's polarity: checked on real speech before a model is trusted.

A model trained with a sign- and scale-blind loss (SI-SNR alone) may learn to invert its output. Such a
model cancels speech when its output is mixed with the input (an attenuation limit), and it misleads
anything downstream that assumes the waveform's sign. The probe is 2.4 s of LibriSpeech (CC BY 4.0) with
white noise at 10 dB SNR; a denoiser's output must project positively onto its input.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import soundfile as sf

from ansray.attenuation import output_gain

from .checkpoint import CheckpointError

PROBE = Path(__file__).resolve().parent.parent / "assets" / "probe" / "198-209-0000-probe.ogg"
PROBE_SNR_DB = 10.0


def probe_signal() -> tuple[np.ndarray, int]:
    """The noisy speech probe: [samples] float32, and its rate."""
    speech, rate = sf.read(PROBE, dtype="float32")
    noise = np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2)) / 10 ** (PROBE_SNR_DB / 20)
    return speech + noise, rate


def probe_gain(model) -> float:
    """The least-squares gain of `model`'s output onto its input, on the probe (negative: inverted)."""
    from ansray.enhancement import enhance

    noisy, rate = probe_signal()
    enhanced = enhance(noisy, rate, model)
    return output_gain(float(np.dot(enhanced, noisy)), float(np.dot(noisy, noisy)))


_CHECKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def check_polarity_once(model, source: str = "model") -> float:
    """`check_polarity`, remembered per model object."""
    if model not in _CHECKED:
        _CHECKED[model] = check_polarity(model, source)
    return _CHECKED[model]


def check_polarity(model, source: str) -> float:
    """Refuses a model whose output is anti-correlated with its input (CheckpointError naming `source`);
    returns the probe gain otherwise."""
    gain = probe_gain(model)
    if not gain > 0:
        raise CheckpointError(
            source, f"its output is anti-correlated with its input (least-squares gain {gain:+.2f} on noisy "
                    "speech): it inverts polarity, so mixing it with the input would cancel speech. Retrain "
                    "it with a loss that fixes sign and scale (jobs/train.py --loss-mode Mix)")
    return gain


def keep_polarity(model, shift: float = 2.0):
    """Shifts both UNets' final pre-tanh mask (real part) by `shift`, in place, and returns the model.

    For untrained models only, in speed and plumbing tests where the weights do not matter: a random
    FRCRN's mask leans negative and inverts its output (probe gain -1.6 for the tiny size, seed 0), which
    the job refuses; shifted by 2, the gain is +0.88 while the output still depends on the input.
    """
    import torch

    with torch.no_grad():
        for unet in (model.unet, model.unet2):
            # A complex 1x1 conv adds conv_re's bias minus conv_im's to the real part, their sum to the imaginary.
            unet.linear.conv_re.bias += shift / 2
            unet.linear.conv_im.bias -= shift / 2
    return model
