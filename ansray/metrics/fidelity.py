"""Sign and level of an output against its reference: what SI-SDR, being scale-invariant, cannot see."""

from __future__ import annotations

import math

import numpy as np

from ansray.metrics.inputs import nan_when_undefined, paired_signals


@nan_when_undefined
def projection_gain(estimate: np.ndarray, reference: np.ndarray) -> float:
    """The least-squares gain g of `estimate` [T] onto `reference` [T]: estimate = g * reference + e
    with e orthogonal to the reference. 1 is faithful; negative is a polarity-inverted output."""
    estimate, reference = paired_signals(estimate, reference)
    return float(np.dot(estimate, reference) / np.dot(reference, reference))


@nan_when_undefined
def level_difference_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """RMS level of `estimate` [T] minus that of `reference` [T], in dB, over the same samples."""
    estimate, reference = paired_signals(estimate, reference)
    energy = float(np.dot(estimate, estimate))
    return 10.0 * math.log10(energy / float(np.dot(reference, reference))) if energy > 0 else -math.inf
