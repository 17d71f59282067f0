"""How much the denoiser may take away, and how its output relates to its input.

An attenuation limit of L dB keeps a share g = 10^(-L/20) of the untouched input in the output:
out = g * input + (1 - g) * enhanced, so noise is attenuated by at most L dB (DeepFilterNet's
`--atten-lim`; "observation adding", Iwamoto et al., Interspeech 2022, which helps ASR). The mix needs
an enhanced signal with the input's sign and level, which `output_gain` measures.
"""

from __future__ import annotations

import math

import numpy as np


def dry_share(limit_db: float | None) -> float:
    """g: the share of the input kept by an attenuation limit of `limit_db` dB (0 for no limit)."""
    if limit_db is None:
        return 0.0
    if not limit_db >= 0:
        raise ValueError(f"an attenuation limit must be >= 0 dB, got {limit_db}")
    return 10.0 ** (-limit_db / 20.0)


def limit_attenuation(enhanced: np.ndarray, original: np.ndarray, limit_db: float | None) -> np.ndarray:
    """g * original + (1 - g) * enhanced, sample by sample (same shapes)."""
    g = dry_share(limit_db)
    if g == 0.0:
        return enhanced
    return (g * original + (1.0 - g) * enhanced).astype(np.float32)


def output_gain(dot: float, energy: float) -> float | None:
    """The least-squares gain of the output onto the input, <out, in> / <in, in>: negative for an output
    of inverted polarity; None for a silent input."""
    return dot / energy if energy > 0 else None


def gain_db(gain: float | None) -> float | None:
    """20 log10 |gain|: the level of the output's part along the input, relative to the input."""
    if gain is None or gain == 0:
        return None
    return 20.0 * math.log10(abs(gain))
