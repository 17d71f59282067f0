"""Figures of an evaluation as PNG bytes, drawn on matplotlib's Agg canvas (no display, no pyplot state):
metric distributions for noisy vs enhanced, and spectrograms of one file before and after."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ansray.evaluation.summary import LABELS
from ansray.metrics.inputs import require_eval_package

SPECTROGRAM_SECONDS = 0.032  # 32 ms Hann frames with 75% overlap: the usual view of speech harmonics
SPECTROGRAM_RANGE_DB = 80.0
NOISY_COLOR, ENHANCED_COLOR = "#d95f02", "#1b9e77"


def plot_distributions(results: pd.DataFrame, columns: Sequence[str]) -> bytes:
    """One panel per metric column: box plots of the noisy (`noisy_<column>`, where present) and enhanced
    values over the files, each file drawn as a point, and a line joining a file's two points."""
    figure, axes = _figure(len(columns), columns=min(3, len(columns)), panel_size=(3.6, 3.2))
    rng = np.random.default_rng(0)  # the jitter of the points, the same on every run
    for ax, column in zip(axes, columns):
        groups = [("noisy", "noisy_" + column, NOISY_COLOR), ("enhanced", column, ENHANCED_COLOR)]
        groups = [group for group in groups if group[1] in results]
        values = [results[name].to_numpy(dtype=np.float64) for _, name, _ in groups]
        finite = [v[np.isfinite(v)] for v in values]
        ax.boxplot(finite, positions=range(len(groups)), widths=0.5, showfliers=False,
                   medianprops={"color": "black"})
        jitter = rng.uniform(-0.08, 0.08, size=len(results))
        if len(groups) == 2 and len(results) <= 200:
            ax.plot(np.stack([jitter, 1 + jitter]), np.stack(values), color="grey", alpha=0.3, linewidth=0.8)
        for position, (_, _, color), v in zip(range(len(groups)), groups, values):
            ax.scatter(position + jitter, v, s=12, color=color, alpha=0.8, zorder=3)
        ax.set_xticks(range(len(groups)), [label for label, _, _ in groups])
        ax.set_title(LABELS.get(column, column))
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(f"Per-file metrics, noisy vs enhanced ({len(results)} files)")
    return _png(figure)


def plot_spectrograms(signals: dict[str, np.ndarray], sample_rate: int, title: str) -> bytes:
    """Stacked log-power spectrograms of `signals` (role -> mono [T], in the order given: say noisy,
    enhanced, clean) on one colour scale, the top SPECTROGRAM_RANGE_DB below the loudest bin of any."""
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
