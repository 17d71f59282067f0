"""Summary statistics of an evaluation: per metric, the mean with its 95% confidence interval and the
median, for the noisy input, each system's output and their paired difference, as markdown tables: one
row per system with the headline metrics, and one table per system with every metric.

The interval is Student's t-interval for the mean, `mean ± t(0.975, n-1) · s / sqrt(n)`; for the difference
it is the paired t-interval, whose exclusion of 0 is the paired t-test at 5%. It is exact for normal data
and close for the sample sizes evaluations have; it needs no seed, so summaries are reproducible."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CONFIDENCE = 0.95

LABELS = {
    "si_sdr": "SI-SDR (dB)",
    "pesq_wb": "PESQ-WB",
    "pesq_nb": "PESQ-NB",
    "stoi": "STOI",
    "estoi": "ESTOI",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_p808": "DNSMOS P.808",
    "wer": "WER (%)",
}
"""How each metric column is named in the tables and the plots."""

LOWER_IS_BETTER = ("wer",)
"""The columns where a lower value is better; every other metric is better when higher."""

HEADLINE_COLUMNS = ("pesq_wb", "stoi", "si_sdr", "dnsmos_ovrl", "wer")
"""The columns of the systems table and plot, those that were measured, in this order."""

SYSTEM_NOISY, SYSTEM_CLEAN = "noisy", "clean"
"""The rows of the systems table for the unprocessed input and, for WER, the clean speech."""

_DECIMALS = {"stoi": 3, "estoi": 3, "wer": 1}  # STOI lives in [0, 1], WER in percent; dB and MOS take 2


@dataclass(frozen=True)
class Estimate:
    """The finite values of one metric over the files: how many, their mean with its confidence
    interval (NaN under two values), and their median."""

    count: int
    mean: float
    ci_low: float
    ci_high: float
    median: float


@dataclass(frozen=True)
class MetricSummary:
    """One metric column: estimates for the enhanced output, and, where the noisy input was scored,
    for the noisy input and for the per-file difference enhanced - noisy."""

    column: str
    enhanced: Estimate
    noisy: Estimate | None = None
    difference: Estimate | None = None


def estimate(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> Estimate:
    """Mean, t-interval and median of `values` [N], NaNs left out."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    count = len(finite)
    if count == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(np.mean(finite))
    if count < 2:
        return Estimate(count, mean, math.nan, math.nan, float(np.median(finite)))
    half_width = t_quantile((1.0 + confidence) / 2.0, count - 1) * float(np.std(finite, ddof=1)) / math.sqrt(count)
    return Estimate(count, mean, mean - half_width, mean + half_width, float(np.median(finite)))


def t_quantile(probability: float, degrees_of_freedom: int) -> float:
    """The `probability` quantile of Student's t distribution, for `probability` in (0.5, 1), found by
    bisection on the exact distribution function (numpy only: scipy is not a dependency)."""
    if not 0.5 < probability < 1.0:
        raise ValueError(f"probability must be in (0.5, 1), got {probability}")
    two_sided = 2.0 * probability - 1.0
    low, high = 0.0, 1.0
    while t_two_sided_probability(high, degrees_of_freedom) < two_sided:
        low, high = high, 2.0 * high
    while high - low > 1e-12 * high:
        middle = (low + high) / 2.0
        if t_two_sided_probability(middle, degrees_of_freedom) < two_sided:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def t_two_sided_probability(t: float, degrees_of_freedom: int) -> float:
    """P(|T| < t) for Student's T with integer degrees of freedom ν >= 1, by the finite series of
    Abramowitz and Stegun 26.7.3 (ν odd) and 26.7.4 (ν even) in θ = atan(t / sqrt(ν))."""
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {degrees_of_freedom}")
    theta = math.atan(t / math.sqrt(degrees_of_freedom))
    sine, cosine = math.sin(theta), math.cos(theta)
    if degrees_of_freedom % 2:
        k = np.arange(3, degrees_of_freedom - 1, 2)
        series = cosine * (1.0 + np.sum(np.cumprod(cosine**2 * (k - 1) / k))) if degrees_of_freedom > 1 else 0.0
        return 2.0 / math.pi * (theta + sine * series)
    k = np.arange(2, degrees_of_freedom - 1, 2)
    return sine * (1.0 + float(np.sum(np.cumprod(cosine**2 * (k - 1) / k))))


@dataclass(frozen=True)
class SystemSummary:
    """One row of the systems table: a system's (or the noisy input's, or the clean speech's) estimate of
    each column over its files, and for a system the estimate of its paired gain over the noisy input."""

    system: str
    files: int
    means: dict[str, Estimate]
    gains: dict[str, Estimate] = field(default_factory=dict)


def summarize(results: pd.DataFrame, columns: Sequence[str]) -> list[MetricSummary]:
    """A MetricSummary for each of `columns` that `results` (one system's rows) holds; the noisy input's
    values are the `noisy_<column>` columns, where present."""
    summaries = []
    for column in columns:
        if column not in results:
            continue
        enhanced = results[column].to_numpy(dtype=np.float64)
        if "noisy_" + column not in results:
            summaries.append(MetricSummary(column, estimate(enhanced)))
            continue
        noisy = results["noisy_" + column].to_numpy(dtype=np.float64)
        summaries.append(MetricSummary(column, estimate(enhanced), estimate(noisy), estimate(enhanced - noisy)))
    return summaries


def summarize_systems(
    results: pd.DataFrame, columns: Sequence[str], systems: Sequence[str]
) -> tuple[dict[str, list[MetricSummary]], list[SystemSummary]]:
    """Per system (in `systems` order), its MetricSummaries over its scored rows of `results`; and the
    rows of the systems table: the noisy input over every file it was scored on, the clean speech (for
    WER, where transcribed), then each system with its paired gain over the noisy input."""
    scored = results[results["error"].isna()]
    per_system = {system: summarize(scored[scored["system"] == system], columns) for system in systems}
    by_key = scored.drop_duplicates("key")  # the noisy and clean columns repeat in each system's row
    rows = []
    for role in (SYSTEM_NOISY, SYSTEM_CLEAN):
        means = {column: estimate(by_key[f"{role}_{column}"]) for column in columns if f"{role}_{column}" in by_key}
        if means:
            rows.append(SystemSummary(role, len(by_key), means))
    for system, summaries in per_system.items():
        files = int((scored["system"] == system).sum())
        means = {summary.column: summary.enhanced for summary in summaries}
        gains = {summary.column: summary.difference for summary in summaries if summary.difference is not None}
        rows.append(SystemSummary(system, files, means, gains))
    return per_system, rows


def render_systems_table(rows: Sequence[SystemSummary]) -> str:
    """The systems as a markdown table of the HEADLINE_COLUMNS measured: one row per system, each cell
    the mean [95% CI] and, for a system, the paired gain over the noisy input, Δ mean [95% CI]."""
    columns = [column for column in HEADLINE_COLUMNS if any(column in row.means for row in rows)]
    header = ["System", "Files"] + [LABELS.get(column, column) for column in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        cells = [row.system, str(row.files)]
        for column in columns:
            decimals = _DECIMALS.get(column, 2)
            cell = _mean_and_interval(row.means.get(column), decimals, signed=False)
            if column in row.gains and row.gains[column].count:
                cell += f" (Δ {_mean_and_interval(row.gains[column], decimals, signed=True)})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_table(summaries: Sequence[MetricSummary]) -> str:
    """The summaries as a markdown table: per metric, the files scored, then mean [95% CI] and median
    for noisy, enhanced and the difference (Δ = enhanced - noisy); `-` where there is no value."""
    percent = f"{CONFIDENCE:.0%}"
    header = ["Metric", "Files"]
    for part in ("Noisy", "Enhanced", "Δ"):
        header += [f"{part} mean [{percent} CI]", f"{part} median"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for summary in summaries:
        decimals = _DECIMALS.get(summary.column, 2)
        cells = [LABELS.get(summary.column, summary.column), str(summary.enhanced.count)]
        for part in (summary.noisy, summary.enhanced, summary.difference):
            cells += _estimate_cells(part, decimals, signed=part is summary.difference)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _estimate_cells(part: Estimate | None, decimals: int, signed: bool) -> list[str]:
    if part is None or part.count == 0:
        return ["-", "-"]
    return [_mean_and_interval(part, decimals, signed), _number(part.median, decimals, signed)]


def _mean_and_interval(part: Estimate | None, decimals: int, signed: bool) -> str:
    """`mean [low, high]`, the mean alone with a single value, `-` without any."""
    if part is None or part.count == 0:
        return "-"
    mean = _number(part.mean, decimals, signed)
    if math.isnan(part.ci_low):
        return mean
    return f"{mean} [{_number(part.ci_low, decimals, signed)}, {_number(part.ci_high, decimals, signed)}]"


def _number(value: float, decimals: int, signed: bool) -> str:
    if math.isnan(value):
        return "-"
    sign = "+" if signed else ""
    return f"{round(value, decimals) + 0.0:{sign}.{decimals}f}"  # + 0.0 turns a rounded -0.0 into 0.0
