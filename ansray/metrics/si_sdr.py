"""Scale-invariant signal-to-distortion ratio, as defined by Le Roux, Wisdom, Erdogan and Hershey,
"SDR - half-baked or well done?", ICASSP 2019 (eq. 4, with zero-mean signals)."""

from __future__ import annotations

import math

import numpy as np

from ansray.metrics.inputs import (
    MetricUndefined,
    as_signal,
    nan_when_undefined,
    paired_signals,
    trim_to_shorter,
)


@nan_when_undefined
def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """SI-SDR of `estimate` [T] against `reference` [T], in dB; both at one sample rate, any rate.

    Both signals are made zero-mean, then the reference is scaled by the optimal
    alpha = <estimate, reference> / ||reference||^2 and
    SI-SDR = 10 log10(||alpha reference||^2 / ||alpha reference - estimate||^2).
    Rescaling the estimate or adding a constant to it leaves the value unchanged; identical signals
    give +inf. NaN where undefined: an empty or silent reference, or an estimate that is constant.

    It is measured at the signals' own rate, not 16 kHz: the ratio is defined at any rate, and
    resampling to 16 kHz would drop the band above 8 kHz from the distortion it counts."""
    estimate, reference = paired_signals(estimate, reference)
    estimate = estimate - estimate.mean()
    reference = reference - reference.mean()
    if not np.any(estimate):
        raise MetricUndefined("estimate is constant, so SI-SDR is 0/0")
    alpha = np.dot(estimate, reference) / np.dot(reference, reference)
    target = alpha * reference
    distortion = target - estimate
    target_energy = float(np.dot(target, target))
    distortion_energy = float(np.dot(distortion, distortion))
    if distortion_energy == 0.0:
        return math.inf
    if target_energy == 0.0:
        return -math.inf
    return 10.0 * math.log10(target_energy / distortion_energy)


@nan_when_undefined
def si_sdr_improvement(estimate: np.ndarray, noisy: np.ndarray, reference: np.ndarray) -> float:
    """How many dB `estimate` [T] gains over `noisy` [T] in SI-SDR against `reference` [T]; all three
    are trimmed to the shortest first, so both terms measure the same stretch of audio."""
    estimate, noisy, reference = trim_to_shorter(
        as_signal(estimate, "estimate"), as_signal(noisy, "noisy"), as_signal(reference, "reference")
    )
    return si_sdr.raising(estimate, reference) - si_sdr.raising(noisy, reference)
