"""Cutting a signal into overlapping fixed-length segments and stitching them back, sample-exact.

One place for this arithmetic: the in-process `ansray.enhance` and the distributed denoise job both
use it. Segments live on the model's 16 kHz timeline. The signal is padded with `edge` zeros at both
ends so that its first and last samples are covered by full STFT windows, and consecutive segments
cross-fade in the middle of their overlap, away from each segment's own edges, where the frame-based
iSTFT reconstructs poorly. `segments_in_order` and `StitchInOrder` do the same sums on a signal
streamed front to back, holding about one segment instead of the whole signal; `overlap_add` is the
stitch of a whole list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ansray.model.config import FRCRNConfig

# The released model's rate and STFT, for planning where no model is at hand (the denoise driver plans
# every file before an actor loads one). Lengths that are a multiple of the hop come back unchanged.
_RELEASED = FRCRNConfig()
MODEL_RATE = _RELEASED.sample_rate
MODEL_HOP = _RELEASED.hop
MODEL_WINDOW = _RELEASED.win_len


@dataclass(frozen=True)
class SegmentPlan:
    """Segment j covers signal samples [start(j), start(j) + segment); positions outside the signal are zeros."""

    num_samples: int
    segment: int
    hop: int
    edge: int
    count: int
    fade_margin: int

    @property
    def overlap(self) -> int:
        return self.segment - self.hop

    def start(self, index: int) -> int:
        return index * self.hop - self.edge

    def signal_span(self, index: int) -> tuple[int, int]:
        """The signal samples [lo, hi) that segment `index` holds (empty where it is all padding); they sit
        at lo - start(index) in the segment."""
        start = self.start(index)
        return max(start, 0), min(start + self.segment, self.num_samples)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_segments(
    num_samples: int,
    segment: int | None,
    overlap: int,
    *,
    edge: int = MODEL_WINDOW,
    multiple: int = MODEL_HOP,
    fade_margin: int = MODEL_WINDOW,
    fit: bool = False,
) -> SegmentPlan:
    """Plans segments of `segment` samples overlapping by `overlap` (rounded to `multiple`).

    `segment=None` plans a single segment holding the whole padded signal: one pass, as the
    reference pipeline does. Short signals get one zero-padded segment; nothing is dropped.
    `fit` keeps the number of segments but shortens them to just cover the signal, so a 4 s signal
    is not computed as a 10 s segment of mostly zeros; batches mixing many signals need the fixed length.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    padded = num_samples + 2 * edge
    if segment is None:
        length = max(_round_up(padded, multiple), MODEL_WINDOW)
        return SegmentPlan(num_samples, length, length, edge, 1, fade_margin)
    segment = _round_up(segment, multiple)
    overlap = _round_up(overlap, multiple)
    if not 2 * fade_margin < overlap < segment:
        raise ValueError(
            f"overlap ({overlap} samples) must exceed twice the fade margin ({2 * fade_margin}) "
            f"and be shorter than the segment ({segment})"
        )
    hop = segment - overlap
    count = 1 if padded <= segment else 1 + -(-(padded - segment) // hop)
    if fit and count == 1:
        return plan_segments(num_samples, None, overlap, edge=edge, multiple=multiple, fade_margin=fade_margin)
    if fit:
        segment = _round_up(-(-(padded + (count - 1) * overlap) // count), multiple)
        hop = segment - overlap
    return SegmentPlan(num_samples, segment, hop, edge, count, fade_margin)


@dataclass(frozen=True)
class SegmentOptions:
    """How a signal is cut for the model. `segment_seconds=None` runs each signal in one pass.

    Defaults were measured (stitching SI-SDR against one pass, and speed): see README.
    """

    segment_seconds: float | None = 10.0
    overlap_seconds: float = 1.0
    # On CPU a batch runs no faster per second of audio than one segment (RTF 0.56 either way, 2 threads)
    # while its activations grow with it (30 s input: 2.5 GB peak at batch 4); GPUs want 16-64.
    batch_size: int = 1

    def plan(self, num_samples: int, fit: bool = False) -> SegmentPlan:
        """Segments of a signal of `num_samples` at 16 kHz; `fit` shortens them to the signal (see plan_segments)."""
        segment = None if self.segment_seconds is None else round(self.segment_seconds * MODEL_RATE)
        return plan_segments(num_samples, segment, round(self.overlap_seconds * MODEL_RATE), fit=fit)


def model_length(frames: int, sample_rate: int) -> int:
    """Samples of a signal of `frames` at `sample_rate` once resampled to 16 kHz, as the resampler produces them."""
    return math.ceil(frames * MODEL_RATE / sample_rate)


def fade_in(plan: SegmentPlan) -> np.ndarray:
    """Weights over one overlap: 0 for the margin, a raised cosine, then 1 for the margin."""
    ramp = plan.overlap - 2 * plan.fade_margin
    u = (np.arange(ramp) + 0.5) / ramp
    rise = 0.5 - 0.5 * np.cos(np.pi * u)
    return np.concatenate([np.zeros(plan.fade_margin), rise, np.ones(plan.fade_margin)]).astype(np.float32)


def segment_weights(plan: SegmentPlan, index: int) -> np.ndarray:
    """Cross-fade weights of segment `index`; the weights of all segments sum to 1 at every sample."""
    weights = np.ones(plan.segment, dtype=np.float32)
    if plan.count == 1:
        return weights
    rise = fade_in(plan)
    if index > 0:
        weights[: plan.overlap] = rise
    if index < plan.count - 1:
        weights[plan.segment - plan.overlap :] = 1.0 - rise
    return weights


def overlap_add(segments, plan: SegmentPlan) -> np.ndarray:
    """Stitches `plan.count` segments [..., segment] (in order) into [..., num_samples]."""
    segments = list(segments)
    if len(segments) != plan.count:
        raise ValueError(f"expected {plan.count} segments, got {len(segments)}")
    stitch = StitchInOrder(plan)
    return np.concatenate([stitch.add(segment) for segment in segments], axis=-1)


def segments_in_order(chunks: Iterable[np.ndarray], plan: SegmentPlan, lead: tuple[int, ...] = ()) -> Iterator[np.ndarray]:
    """Segments 0, 1, ... [*lead, segment] of a signal arriving as consecutive chunks [*lead, n].

    Each is the signal's `plan.signal_span(index)` placed in a zeroed segment; only the samples a later
    segment still needs are kept.
    """
    chunks = iter(chunks)
    held = np.zeros(lead + (0,), dtype=np.float32)  # signal samples [held_from, held_from + width)
    held_from = 0
    for index in range(plan.count):
        start = plan.start(index)
        lo, hi = plan.signal_span(index)  # held_from <= lo: what segment index needs was kept
        while held_from + held.shape[-1] < hi:
            chunk = next(chunks, None)
            if chunk is None:
                raise ValueError(f"signal ended at sample {held_from + held.shape[-1]} of {plan.num_samples}")
            held = np.concatenate([held, np.asarray(chunk, dtype=np.float32)], axis=-1)
        out = np.zeros(lead + (plan.segment,), dtype=np.float32)
        if hi > lo:
            out[..., lo - start : hi - start] = held[..., lo - held_from : hi - held_from]
        yield out
        drop = min(max(plan.start(index + 1) - held_from, 0), held.shape[-1])
        held, held_from = held[..., drop:], held_from + drop


class StitchInOrder:
    """Cross-fades segments 0, 1, ... as they arrive; `add` returns the signal samples each one completes.

    What is held is one overlap, not the whole signal; `overlap_add` is this over a list. Starting at
    segment `first` > 0 stitches a later stretch on its own (a piece of a long file): the first segment
    added then only primes the cross-fade, and the samples it returns lack the earlier segment's share.
    """

    def __init__(self, plan: SegmentPlan, first: int = 0):
        self.plan = plan
        self.added = first
        self._carry = None  # the previous segment's weighted tail, over the next one's overlap

    def add(self, segment: np.ndarray) -> np.ndarray:
        """Adds the next segment [..., segment]; returns the finished samples [..., n] that follow the last call's."""
        plan, index = self.plan, self.added
        if index >= plan.count:
            raise ValueError(f"all {plan.count} segments were already added")
        summed = segment * segment_weights(plan, index)
        if self._carry is not None:
            summed[..., : plan.overlap] += self._carry
        last = index == plan.count - 1
        self._carry = None if last else summed[..., plan.hop :].copy()
        self.added += 1
        begin = plan.start(index)  # signal position of summed[..., 0]
        finished = plan.segment if last else plan.hop
        lo, hi = max(begin, 0), min(begin + finished, plan.num_samples)
        return summed[..., lo - begin : max(hi, lo) - begin]
