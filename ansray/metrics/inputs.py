"""What every metric does to its inputs first: one mono float signal, 16 kHz where the metric needs it,
trimmed to the shorter of a pair, and checked for the silence or emptiness that leaves a metric undefined."""

from __future__ import annotations

import functools
import logging
import math
from types import ModuleType
from typing import Callable

import numpy as np

from ansray.extras import extra_hint, require_package
from ansray.io.resample import resample

logger = logging.getLogger(__name__)

METRIC_SAMPLE_RATE = 16000
"""PESQ-WB, DNSMOS and the STOI reference setups are all defined at 16 kHz."""

EVAL_EXTRA_HINT = extra_hint("eval")

SILENCE_RMS_DBFS = -100.0
"""Below this RMS a signal counts as silent: under the noise floor of 16-bit audio (about -101 dBFS)."""


class MetricUndefined(Exception):
    """A metric has no value for these signals, for example a silent reference; `str()` is the reason."""


def nan_when_undefined(metric: Callable[..., float]) -> Callable[..., float]:
    """Decorator for the public metric functions: where the metric is undefined they return NaN, so that
    one silent file cannot stop a batch. `metric.raising` keeps the form that raises `MetricUndefined`,
    which `compute_metrics` calls to record the reason next to the NaN."""

    @functools.wraps(metric)
    def returning_nan(*args, **kwargs) -> float:
        try:
            return metric(*args, **kwargs)
        except MetricUndefined as undefined:
            logger.debug("%s is undefined: %s", metric.__name__, undefined)
            return math.nan

    returning_nan.raising = metric
    return returning_nan


def require_eval_package(name: str) -> ModuleType:
    """Imports a package of the `eval` extra, which code outside `ansray.metrics` must never need."""
    return require_package(name, "eval", needed_by="ansray.metrics")


def as_signal(audio: np.ndarray, role: str) -> np.ndarray:
    """Returns `audio` as a float64 mono signal [T]; accepts [T], [1, T] or [T, 1].

    Raises ValueError for several channels (score each channel on its own) and MetricUndefined for an
    empty signal or one that holds NaN or inf samples."""
    signal = np.asarray(audio, dtype=np.float64)
    if signal.ndim == 2 and 1 in signal.shape:
        signal = signal.reshape(-1)
    if signal.ndim != 1:
        raise ValueError(f"{role} must be mono, [T]; got shape {signal.shape}: score each channel on its own")
    if signal.size == 0:
        raise MetricUndefined(f"{role} is empty")
    if not np.all(np.isfinite(signal)):
        raise MetricUndefined(f"{role} holds NaN or inf samples")
    return signal


def rms_dbfs(signal: np.ndarray) -> float:
    """RMS level of a signal [T] in dB relative to full scale 1.0; -inf for digital silence."""
    mean_square = float(np.mean(np.square(signal)))
    return 10.0 * math.log10(mean_square) if mean_square > 0.0 else -math.inf


def require_sound(signal: np.ndarray, role: str) -> None:
    """Raises MetricUndefined when `signal` [T] is silent (RMS under SILENCE_RMS_DBFS)."""
    level = rms_dbfs(signal)
    if level < SILENCE_RMS_DBFS:
        raise MetricUndefined(f"{role} is silent (RMS {level:.0f} dBFS)")


def trim_to_shorter(*signals: np.ndarray) -> list[np.ndarray]:
    """Cuts signals [T_i] to the shortest length; they are assumed to start at the same instant."""
    length = min(len(signal) for signal in signals)
    return [signal[:length] for signal in signals]


def paired_signals(
    estimate: np.ndarray, reference: np.ndarray, sample_rate: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Prepares an (estimate, reference) pair for an intrusive metric: mono float, resampled to 16 kHz
    unless `sample_rate` is None, trimmed to the shorter, with a reference that is not silent."""
    estimate = as_signal(estimate, "estimate")
    reference = as_signal(reference, "reference")
    if sample_rate is not None:
        estimate = resample(estimate, sample_rate, METRIC_SAMPLE_RATE)
        reference = resample(reference, sample_rate, METRIC_SAMPLE_RATE)
    estimate, reference = trim_to_shorter(estimate, reference)
    require_sound(reference, "reference")
    return estimate, reference
