"""Intrusive quality and intelligibility metrics, which need the clean reference: PESQ (ITU-T P.862 and
P.862.2, the `pesq` package) and STOI / ESTOI (Taal et al. 2011, Jensen and Taal 2016; `pystoi`)."""

from __future__ import annotations

import warnings

import numpy as np

from ansray.metrics.inputs import (
    METRIC_SAMPLE_RATE,
    MetricUndefined,
    nan_when_undefined,
    paired_signals,
    require_eval_package,
    require_sound,
)


@nan_when_undefined
def pesq_wb(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) of `estimate` [T] against `reference` [T], as MOS-LQO from about
    1.04 to 4.64. Signals at another rate are resampled to 16 kHz first. NaN where undefined: empty or
    silent signals, under 0.25 s, or no speech found by PESQ's voice activity detector."""
    return _pesq(estimate, reference, sample_rate, mode="wb")


@nan_when_undefined
def pesq_nb(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """Narrow-band PESQ (ITU-T P.862 with the P.862.1 mapping to MOS-LQO, about 1.02 to 4.55) of
    `estimate` [T] against `reference` [T], computed at 16 kHz like the wide-band score; NaN as pesq_wb."""
    return _pesq(estimate, reference, sample_rate, mode="nb")


def _pesq(estimate: np.ndarray, reference: np.ndarray, sample_rate: int, mode: str) -> float:
    pesq = require_eval_package("pesq")
    estimate, reference = paired_signals(estimate, reference, sample_rate)
    # PESQ's level alignment divides by the estimate's power: a silent estimate crashes it with a ValueError.
    require_sound(estimate, "estimate")
    try:
        return float(pesq.pesq(METRIC_SAMPLE_RATE, reference, estimate, mode))
    except pesq.BufferTooShortError as too_short:
        raise MetricUndefined("shorter than the 0.25 s PESQ needs") from too_short
    except pesq.NoUtterancesError as no_speech:
        raise MetricUndefined("PESQ found no speech in the reference") from no_speech


@nan_when_undefined
def stoi(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """STOI (Taal et al. 2011) of `estimate` [T] against `reference` [T], from 0 to 1. Signals at another
    rate are resampled to 16 kHz first (pystoi then works at 10 kHz). NaN where undefined: an empty or
    silent reference, or under 30 frames (about 0.4 s) of reference speech."""
    return _stoi(estimate, reference, sample_rate, extended=False)


@nan_when_undefined
def estoi(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """Extended STOI (Jensen and Taal 2016), which also rates modulated noise; otherwise as `stoi`."""
    return _stoi(estimate, reference, sample_rate, extended=True)


def _stoi(estimate: np.ndarray, reference: np.ndarray, sample_rate: int, extended: bool) -> float:
    pystoi = require_eval_package("pystoi")
    estimate, reference = paired_signals(estimate, reference, sample_rate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        value = float(pystoi.stoi(reference, estimate, METRIC_SAMPLE_RATE, extended=extended))
    # pystoi returns 1e-5 with a warning, not an error, when too little speech is left after it drops
    # the reference's silent frames.
    if any("Not enough STFT frames" in str(warning.message) for warning in caught):
        raise MetricUndefined("under the 30 frames (about 0.4 s) of reference speech that STOI needs")
    return value
