"""Room impulse responses: a synthetic exponential-decay generator and a T60 estimate.

The generator stands in for a measured RIR corpus in tests and starter corpora; `estimate_t60`
(Schroeder backward integration) lets a corpus be filtered to the DNS 2021 range of 0.3 to 1.3 s.
"""

from __future__ import annotations

import numpy as np

DNS_T60_RANGE = (0.3, 1.3)  # seconds: the RIRs the ICASSP 2021 synthesizer draws from


def synthetic_rir(
    rng: np.random.Generator,
    t60: float,
    sample_rate: int = 16000,
    *,
    direct_delay: float = 0.003,
    early_reflections: int = 6,
    reverb_gain: float = 0.3,
) -> np.ndarray:
    """A synthetic RIR [K] with a unit direct path, sparse early reflections and a noise tail.

    The tail is Gaussian noise whose amplitude falls 60 dB over `t60` seconds; K is 1.2 · t60
    seconds. Every other tap stays below the direct path, so its peak marks the direct path.
    """
    if t60 <= 0:
        raise ValueError(f"t60 must be positive, got {t60}")
    length = int(np.ceil(1.2 * t60 * sample_rate))
    direct = int(round(direct_delay * sample_rate))
    rir = np.zeros(length + direct)
    t = np.arange(length) / sample_rate
    # 60 dB of amplitude decay is a factor 1000: exp(-ln(1000) · t / t60).
    envelope = np.exp(-np.log(1000.0) * t / t60)
    rir[direct:] = reverb_gain * envelope * rng.standard_normal(length)
    delays = direct + rng.integers(1, int(0.05 * sample_rate), size=early_reflections)
    rir[delays] += rng.uniform(-0.7, 0.7, size=early_reflections) * np.exp(
        -np.log(1000.0) * (delays - direct) / sample_rate / t60
    )
    np.clip(rir, -0.95, 0.95, out=rir)
    rir[direct] = 1.0
    return rir


def estimate_t60(rir: np.ndarray, sample_rate: int = 16000) -> float:
    """T60 in seconds of `rir` [K], from the -5 to -25 dB slope of its Schroeder decay (T20 × 3).

    Returns nan when the decay never reaches -25 dB.
    """
    energy = np.asarray(rir, dtype=np.float64) ** 2
    decay = np.cumsum(energy[::-1])[::-1]
    if decay[0] <= 0:
        return float("nan")
    decay_db = 10.0 * np.log10(decay / decay[0] + 1e-300)
    start = int(np.argmax(decay_db <= -5.0))
    stop = int(np.argmax(decay_db <= -25.0))
    if decay_db[stop] > -25.0 or stop <= start:
        return float("nan")
    t = np.arange(start, stop + 1) / sample_rate
    slope = np.polyfit(t, decay_db[start : stop + 1], 1)[0]
    return float(-60.0 / slope) if slope < 0 else float("nan")
