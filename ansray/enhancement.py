"""Enhancing signals with FRCRN: segment -> enhance in batches -> stitch, in-process.

`enhance` is the notebook and test entry point for one signal; the distributed job
(`ansray.denoise`) runs the same functions on many files: the level gains before, `plan_segments`
to feed the model, `enhance_batch` inside each actor, the cross-fade of `ansray.segments` after.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ansray.attenuation import dry_share, limit_attenuation
from ansray.io.resample import StreamResampler
from ansray.level import level_gains
from ansray.model import FRCRN, FRCRNInference, load_model
from ansray.model.polarity import check_polarity_once
from ansray.segments import SegmentPlan, StitchInOrder, plan_segments, segments_in_order

MODEL_RATE = 16000
DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Frames of the caller's signal handled at once by the streaming steps of `enhance`.
CHUNK_FRAMES = 1 << 18


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


def inference_model(model: FRCRN | FRCRNInference | str, device: str | torch.device = "cpu") -> FRCRNInference:
    """The fused inference network from a model, an inference network, or anything `load_model` takes."""
    if isinstance(model, FRCRNInference):
        return model
    if not isinstance(model, FRCRN):
        model = load_model(model, device=device)
    return FRCRNInference.from_model(model)


def enhance_batch(model: FRCRNInference, batch: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """[B, S] float32 at 16 kHz -> [B, S] enhanced, float32. Lengths are multiples of the STFT hop."""
    device = next(model.parameters()).device
    cast = DTYPES[dtype]
    with torch.inference_mode():
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if device.type == "cuda":
            inputs = inputs.pin_memory().to(device, non_blocking=True)
        autocast = torch.autocast(device.type, dtype=cast) if cast is not None else contextlib.nullcontext()
        with autocast:
            out = model(inputs).wav
        return out.float().cpu().numpy()


def model_length(frames: int, sample_rate: int) -> int:
    """Samples of a signal of `frames` at `sample_rate` once resampled to 16 kHz, as the resampler produces them."""
    return math.ceil(frames * MODEL_RATE / sample_rate)


def _chunks(signal: np.ndarray, frames: int = CHUNK_FRAMES) -> Iterator[tuple[np.ndarray, bool]]:
    """Consecutive windows of `signal` and whether each is the last."""
    for start in range(0, len(signal), frames):
        yield signal[start : start + frames], start + frames >= len(signal)


def enhance(
    data: np.ndarray,
    sample_rate: int,
    model: FRCRN | FRCRNInference | str,
    *,
    segment_seconds: float | None = SegmentOptions.segment_seconds,
    overlap_seconds: float = SegmentOptions.overlap_seconds,
    batch_size: int = SegmentOptions.batch_size,
    dtype: str = "float32",
    fit_segments: bool = True,
    attenuation_limit: float | None = None,
) -> np.ndarray:
    """Denoises `data` ([frames] or [frames, channels]) at any rate; returns the same shape and rate.

    `attenuation_limit` (dB) attenuates noise by at most that much: the output is
    g * data + (1 - g) * enhanced with g = 10^(-limit/20), per channel at the signal's own rate (see
    `ansray.attenuation`); the model must keep its input's polarity, which is checked once per model.

    Each channel is enhanced on its own. The level is normalised per channel as the model was trained
    (ModelScope's -25 dBFS `audio_norm`) and restored afterwards. `fit_segments` shortens the segments
    to just cover the signal; False keeps them at `segment_seconds`, as the denoise job does when it
    batches several segments.

    The signal streams through: resampled to 16 kHz chunk by chunk, cut into segments in order, and
    stitched and resampled back as each segment finishes. Beyond the input and the output, memory is a
    few segments and one batch's activations, whatever the length (the same sums as doing each step on
    the whole signal).
    """
    signal = np.asarray(data, dtype=np.float32)
    mono = signal.ndim == 1
    if mono:
        signal = signal[:, None]
    if len(signal) == 0:
        raise ValueError("cannot enhance an empty signal")
    if not all(np.isfinite(chunk).all() for chunk, _ in _chunks(signal)):
        raise ValueError("signal contains NaN or Inf")
    network = inference_model(model)
    if attenuation_limit is not None:
        dry_share(attenuation_limit)
        check_polarity_once(network)
    options = SegmentOptions(segment_seconds, overlap_seconds, batch_size)
    frames, channels = signal.shape
    gains = level_gains(signal)
    plan = options.plan(model_length(frames, sample_rate), fit=fit_segments)

    to_model = StreamResampler(sample_rate, MODEL_RATE, channels)
    model_rate_chunks = (to_model.push(chunk * gains, last).T for chunk, last in _chunks(signal))
    noisy_segments = segments_in_order(model_rate_chunks, plan, (channels,))
    stitch = StitchInOrder(plan)
    from_model = StreamResampler(MODEL_RATE, sample_rate, channels)
    restored = np.empty((frames, channels), dtype=np.float32)
    written = 0

    # Pieces are (segment, channel) in order, so segments finish in order however batches fall.
    pieces = [(j, c) for j in range(plan.count) for c in range(channels)]
    noisy, enhanced = None, None
    for first in range(0, len(pieces), batch_size):
        batch = pieces[first : first + batch_size]
        inputs = []
        for j, c in batch:
            if c == 0:
                noisy = next(noisy_segments)
            inputs.append(noisy[c])
        for (j, c), out in zip(batch, enhance_batch(network, np.stack(inputs), dtype)):
            if c == 0:
                enhanced = np.empty((channels, plan.segment), dtype=np.float32)
            enhanced[c] = out
            if c == channels - 1:
                finished = from_model.push(stitch.add(enhanced).T, last=j == plan.count - 1)
                take = min(len(finished), frames - written)
                restored[written : written + take] = limit_attenuation(
                    finished[:take] / gains, signal[written : written + take], attenuation_limit)
                written += take
    if written != frames:
        raise RuntimeError(f"stitching produced {written} of {frames} frames")
    return restored[:, 0] if mono else restored
