"""The whole-signal form of segment cutting: the definition the streamed cutters are checked against."""

from __future__ import annotations

import numpy as np

from ansray.segments import SegmentPlan


def cut_segment(signal: np.ndarray, plan: SegmentPlan, index: int) -> np.ndarray:
    """Segment `index` of `signal` [..., num_samples] as [..., segment], zero-padded outside the signal."""
    start = plan.start(index)
    out = np.zeros(signal.shape[:-1] + (plan.segment,), dtype=np.float32)
    lo, hi = plan.signal_span(index)
    if hi > lo:
        out[..., lo - start : hi - start] = signal[..., lo:hi]
    return out
