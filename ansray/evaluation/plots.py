"""Figures of an evaluation as PNG bytes, drawn on matplotlib's Agg canvas (no display, no pyplot state):
metric distributions for the noisy input and each system, the mean of each headline metric per system,
and spectrograms of one file before and after."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ansray.evaluation.summary import (
    CONFIDENCE,
    LABELS,
    LOWER_IS_BETTER,
    SYSTEM_CLEAN,
    SYSTEM_NOISY,
    SystemSummary,
)
from ansray.metrics.inputs import require_eval_package

SPECTROGRAM_SECONDS = 0.032  # 32 ms Hann frames with 75% overlap: the usual view of speech harmonics
SPECTROGRAM_RANGE_DB = 80.0
NOISY_COLOR, CLEAN_COLOR = "#d95f02", "#666666"
SYSTEM_COLORS = ("#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#b2df8a")
"""Colorbrewer's Dark2 less the noisy input's orange, then Paired: one per system, repeating past eight."""
MAX_JOINED_FILES = 200  # beyond this many files, lines joining a file's points hide the boxes


def values_by_system(results: pd.DataFrame, column: str, systems: Sequence[str]) -> pd.DataFrame:
    """One `column`'s values over the scored rows of `results`: [files, groups] indexed by key, the
    groups being the noisy input (`noisy_<column>`), each system, and the clean speech (`clean_<column>`),
    those present; NaN where a file has no value."""
    scored = results[results["error"].isna()]
    by_key = scored.drop_duplicates("key").set_index("key")
    groups = {}
    if f"{SYSTEM_NOISY}_{column}" in by_key:
        groups[SYSTEM_NOISY] = by_key[f"{SYSTEM_NOISY}_{column}"]
    for system in systems:
        if column in scored:
            groups[system] = scored[scored["system"] == system].set_index("key")[column]
    if f"{SYSTEM_CLEAN}_{column}" in by_key:
        groups[SYSTEM_CLEAN] = by_key[f"{SYSTEM_CLEAN}_{column}"]
    return pd.DataFrame(groups, dtype=np.float64)


def plot_distributions(results: pd.DataFrame, columns: Sequence[str], systems: Sequence[str]) -> bytes:
    """One panel per metric column: box plots of the noisy input's, each system's and (for WER) the clean
    speech's values over the files, each file drawn as a point, and a line joining a file's points."""
    figure, axes = _figure(len(columns), columns=min(3, len(columns)), panel_size=(1.2 + 1.2 * (len(systems) + 1), 3.2))
    rng = np.random.default_rng(0)  # the jitter of the points, the same on every run
    files = results["key"].nunique()
    for ax, column in zip(axes, columns):
        table = values_by_system(results, column, systems)
        positions = np.arange(table.shape[1])
        finite = [values[np.isfinite(values)] for values in table.to_numpy().T]
        ax.boxplot(finite, positions=positions, widths=0.5, showfliers=False, medianprops={"color": "black"})
        jitter = rng.uniform(-0.08, 0.08, size=len(table))
        if table.shape[1] > 1 and len(table) <= MAX_JOINED_FILES:
            ax.plot(positions[:, None] + jitter, table.to_numpy().T, color="grey", alpha=0.3, linewidth=0.8)
        for position, group in zip(positions, table.columns):
            ax.scatter(position + jitter, table[group], s=12, color=_color(group, systems), alpha=0.8, zorder=3)
        ax.set_xticks(positions, list(table.columns), rotation=30 if table.shape[1] > 3 else 0)
        ax.set_title(_title(column))
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(f"Per-file metrics, noisy input and {', '.join(systems)} ({files} files)")
    return _png(figure)


def plot_systems(rows: Sequence[SystemSummary], columns: Sequence[str]) -> bytes:
    """One panel per metric column: each system's mean with its confidence interval, in the given order
    (noisy input first), so that systems that differ in one setting (an attenuation limit) read as a
    curve. The clean speech's WER, where measured, is the dashed line."""
    figure, axes = _figure(len(columns), columns=min(3, len(columns)), panel_size=(1.5 + 0.6 * len(rows), 3.4))
    systems = [row.system for row in rows if row.system not in (SYSTEM_NOISY, SYSTEM_CLEAN)]
    for ax, column in zip(axes, columns):
        shown = [row for row in rows if row.system != SYSTEM_CLEAN and column in row.means]
        means = np.array([row.means[column].mean for row in shown])
        low = np.array([row.means[column].ci_low for row in shown])
        high = np.array([row.means[column].ci_high for row in shown])
        errors = np.nan_to_num(np.stack([means - low, high - means]))
        positions = np.arange(len(shown))
        ax.plot(positions, means, color="grey", linewidth=0.8, zorder=1)
        for position, row, mean, error in zip(positions, shown, means, errors.T):
            ax.errorbar(position, mean, yerr=error[:, None], fmt="o", capsize=4, color=_color(row.system, systems))
        clean = next((row for row in rows if row.system == SYSTEM_CLEAN and column in row.means), None)
        if clean is not None:
            ax.axhline(clean.means[column].mean, color=CLEAN_COLOR, linestyle="--", linewidth=1, label="clean")
            ax.legend(loc="best", fontsize="small")
        ax.set_xticks(positions, [row.system for row in shown], rotation=30 if len(shown) > 3 else 0)
        ax.set_title(_title(column))
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(f"Mean and {CONFIDENCE:.0%} confidence interval per system")
    return _png(figure)


def _color(group: str, systems: Sequence[str]) -> str:
    if group == SYSTEM_NOISY:
        return NOISY_COLOR
    if group == SYSTEM_CLEAN:
        return CLEAN_COLOR
    return SYSTEM_COLORS[list(systems).index(group) % len(SYSTEM_COLORS)]


def _title(column: str) -> str:
    label = LABELS.get(column, column)
    return f"{label}, lower is better" if column in LOWER_IS_BETTER else label


def plot_spectrograms(signals: dict[str, np.ndarray], sample_rate: int, title: str) -> bytes:
    """Stacked log-power spectrograms of `signals` (role -> mono [T], in the order given: say noisy,
    each system, clean) on one colour scale, the top SPECTROGRAM_RANGE_DB below the loudest bin of any."""
    frame = 2 ** round(math.log2(SPECTROGRAM_SECONDS * sample_rate))
    powers = {role: _log_power(signal, frame) for role, signal in signals.items()}
    top = max(float(power.max()) for power in powers.values())
    figure, axes = _figure(len(signals), columns=1, panel_size=(9.0, 2.4), sharex=True)
    image = None
    for ax, (role, power) in zip(axes, powers.items()):
        extent = (0.0, len(signals[role]) / sample_rate, 0.0, sample_rate / 2000.0)
        image = ax.imshow(power.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
                          vmin=top - SPECTROGRAM_RANGE_DB, vmax=top, interpolation="nearest")
        ax.set_ylabel(f"{role}\nkHz")
    axes[-1].set_xlabel("seconds")
    figure.colorbar(image, ax=list(axes), label="dB", pad=0.01)
    figure.suptitle(title)
    return _png(figure)


def _log_power(signal: np.ndarray, frame: int) -> np.ndarray:
    """Power in dB of Hann-windowed frames of `signal` [T], hop frame/4: [frames, frame // 2 + 1]."""
    padded = np.pad(np.asarray(signal, dtype=np.float64), (0, max(0, frame - len(signal))))
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[:: frame // 4]
    spectrum = np.fft.rfft(frames * np.hanning(frame), axis=-1)
    return 10.0 * np.log10(np.maximum(np.abs(spectrum) ** 2, 1e-12))


def _figure(panels: int, columns: int, panel_size: tuple[float, float], sharex: bool = False):
    figure_module = require_eval_package("matplotlib.figure")
    rows = math.ceil(panels / columns)
    figure = figure_module.Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=sharex).ravel()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _png(figure) -> bytes:
    backend_agg = require_eval_package("matplotlib.backends.backend_agg")
    backend_agg.FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
