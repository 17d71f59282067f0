"""Input level normalisation as ModelScope's ANS pipeline does it (`audio_norm`), per file.

The pipeline scales the input to an RMS of -25 dBFS, then once more so that the samples whose power
exceeds the mean power have an RMS of -25 dBFS. The two scalings compose into one gain:
10^(-25/20) / sqrt(mean(x^2 | x^2 > mean(x^2))). Both statistics are sums, so a long file is
measured window by window (two passes) without holding it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

TARGET_DBFS = -25.0


@dataclass
class LevelMeter:
    """Accumulates the two passes' sums for each channel of [frames, channels] windows."""

    channels: int
    power_sum: np.ndarray | None = None
    count: int = 0
    loud_sum: np.ndarray | None = None
    loud_count: np.ndarray | None = None

    def __post_init__(self):
        self.power_sum = np.zeros(self.channels)
        self.loud_sum = np.zeros(self.channels)
        self.loud_count = np.zeros(self.channels, dtype=np.int64)

    def add_first_pass(self, window: np.ndarray) -> None:
        self.power_sum += np.sum(np.square(window, dtype=np.float64), axis=0)
        self.count += len(window)

    def mean_power(self) -> np.ndarray:
        return self.power_sum / max(self.count, 1)

    def add_second_pass(self, window: np.ndarray) -> None:
        power = np.square(window, dtype=np.float64)
        loud = power > self.mean_power()
        self.loud_sum += np.where(loud, power, 0.0).sum(axis=0)
        self.loud_count += loud.sum(axis=0)

    def gains(self) -> np.ndarray:
        """The gain per channel; 1 for a silent channel, which has no level to match."""
        loud_power = self.loud_sum / np.maximum(self.loud_count, 1)
        target = 10 ** (TARGET_DBFS / 20)
        with np.errstate(divide="ignore"):
            gains = np.where(loud_power > 0, target / np.sqrt(loud_power), 1.0)
        return gains.astype(np.float32)


def measured_gains(channels: int, windows: Callable[[], Iterable[np.ndarray]]) -> np.ndarray:
    """Per-channel gains of a signal that `windows()` gives as consecutive [frames, channels] windows,
    once per pass (twice): a file is read window by window, never whole."""
    meter = LevelMeter(channels)
    for level_pass in (meter.add_first_pass, meter.add_second_pass):
        for window in windows():
            level_pass(window)
    return meter.gains()


def level_gains(signal: np.ndarray, window: int = 1 << 20) -> np.ndarray:
    """Per-channel gains of a [frames, channels] signal held in memory, measured `window` frames at a
    time so that the float64 statistics never copy a long signal whole."""
    starts = range(0, len(signal), window)
    return measured_gains(signal.shape[1], lambda: (signal[start : start + window] for start in starts))
