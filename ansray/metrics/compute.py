"""One file's metrics as one flat row: a value per column, NaN with a reason where a metric is undefined,
so the evaluation job can write rows from many files into a single table."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ansray.metrics.dnsmos import DNSMOS, process_dnsmos
from ansray.metrics.inputs import MetricUndefined
from ansray.metrics.intrusive import estoi, pesq_nb, pesq_wb, stoi
from ansray.metrics.si_sdr import si_sdr, si_sdr_improvement

METRICS = ("si_sdr", "pesq", "stoi", "dnsmos")
"""The metric names that `compute_metrics` and the evaluation job's --metrics flag accept."""

METRIC_COLUMNS = {
    "si_sdr": ("si_sdr",),
    "pesq": ("pesq_wb", "pesq_nb"),
    "stoi": ("stoi", "estoi"),
    "dnsmos": ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"),
}
"""The columns each metric fills, for the signal being scored."""

NEEDS_REFERENCE = ("si_sdr", "pesq", "stoi")

_REFERENCE_METRICS: dict[str, Callable[..., float]] = {
    "pesq_wb": pesq_wb,
    "pesq_nb": pesq_nb,
    "stoi": stoi,
    "estoi": estoi,
}


def compute_metrics(
    enhanced: np.ndarray,
    sample_rate: int,
    reference: np.ndarray | None = None,
    noisy: np.ndarray | None = None,
    metrics: Sequence[str] = METRICS,
    dnsmos: DNSMOS | None = None,
) -> dict[str, float | str | None]:
    """Scores one file: `enhanced` [T] and, if given, `noisy` [T], against `reference` [T], all mono at
    `sample_rate`.

    Returns a flat row. Each column of METRIC_COLUMNS for the chosen `metrics` comes with a
    `<column>_error` that is None, or the reason why the column is NaN (say, a silent reference). With
    `noisy`, the same columns follow for the noisy input under a `noisy_` prefix, and `si_sdr` adds
    `si_sdr_improvement`. Every row for the same arguments has the same keys.

    `dnsmos` is the caller's scorer (a Ray actor holds one); without it the process's shared scorer
    is used. Raises ValueError for an unknown metric, or one that needs a reference when none is given."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    if reference is None and any(metric in NEEDS_REFERENCE for metric in metrics):
        needing = [metric for metric in metrics if metric in NEEDS_REFERENCE]
        raise ValueError(f"{needing} compare against a clean reference, and none was given")

    row: dict[str, float | str | None] = {}
    scored = [("", enhanced)] + ([("noisy_", noisy)] if noisy is not None else [])
    for prefix, audio in scored:
        for column, (value, reason) in _score_signal(audio, sample_rate, reference, metrics, dnsmos).items():
            row[prefix + column] = value
            row[prefix + column + "_error"] = reason
    if noisy is not None:
        row.update(improvement_columns(enhanced, noisy, reference, metrics))
    return row


def improvement_columns(
    enhanced: np.ndarray, noisy: np.ndarray, reference: np.ndarray | None, metrics: Sequence[str] = METRICS
) -> dict[str, float | str | None]:
    """The columns that compare `enhanced` [T] with `noisy` [T] directly: `si_sdr_improvement` and its
    `_error`, where `si_sdr` is among the `metrics`; none otherwise."""
    if "si_sdr" not in metrics:
        return {}
    value, reason = measure(si_sdr_improvement, enhanced, noisy, reference)
    return {"si_sdr_improvement": value, "si_sdr_improvement_error": reason}


def _score_signal(
    audio: np.ndarray,
    sample_rate: int,
    reference: np.ndarray | None,
    metrics: Sequence[str],
    dnsmos: DNSMOS | None,
) -> dict[str, tuple[float, str | None]]:
    scores: dict[str, tuple[float, str | None]] = {}
    for metric in METRICS:
        if metric not in metrics:
            continue
        if metric == "si_sdr":
            scores["si_sdr"] = measure(si_sdr, audio, reference)
        elif metric == "dnsmos":
            dnsmos_scores = (dnsmos or process_dnsmos())(audio, sample_rate)
            for column, value in zip(
                METRIC_COLUMNS["dnsmos"],
                (dnsmos_scores.sig, dnsmos_scores.bak, dnsmos_scores.ovrl, dnsmos_scores.p808),
            ):
                scores[column] = (value, dnsmos_scores.reason)
        else:
            for column in METRIC_COLUMNS[metric]:
                scores[column] = measure(_REFERENCE_METRICS[column], audio, reference, sample_rate)
    return scores


def measure(metric: Callable[..., float], *signals_and_rate) -> tuple[float, str | None]:
    """Calls a metric's raising form; returns (value, None), or (NaN, reason) where it is undefined."""
    try:
        return metric.raising(*signals_and_rate), None
    except MetricUndefined as undefined:
        return math.nan, str(undefined)
