"""Enhancing signals with FRCRN: segment -> enhance in batches -> stitch, in-process.

`enhance` is the notebook and test entry point for one signal; the distributed job
(`ansray.denoise`) runs the same functions on many files: the level gains before, `plan_segments`
to feed the model, `ansray.model.enhance_batch` inside each actor, the cross-fade of `ansray.segments` after.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ansray.allocator import retain_freed_memory
from ansray.attenuation import dry_share, limit_attenuation
from ansray.io.resample import StreamResampler
from ansray.level import level_gains
from ansray.model import FRCRN, FRCRNInference, enhance_batch, inference_model
from ansray.model.polarity import check_polarity_once
from ansray.segments import SegmentOptions, StitchInOrder, model_length, segments_in_order

# Frames of the caller's signal handled at once by the streaming steps of `enhance`.
CHUNK_FRAMES = 1 << 18


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
    if next(network.parameters()).device.type == "cpu":
        retain_freed_memory()  # reuse each segment's activation memory (see ansray.allocator)
    if attenuation_limit is not None:
        dry_share(attenuation_limit)
        check_polarity_once(network)
    options = SegmentOptions(segment_seconds, overlap_seconds, batch_size)
    frames, channels = signal.shape
    gains = level_gains(signal)
    plan = options.plan(model_length(frames, sample_rate), fit=fit_segments)

    to_model = StreamResampler(sample_rate, network.config.sample_rate, channels)
    model_rate_chunks = (to_model.push(chunk * gains, last).T for chunk, last in _chunks(signal))
    noisy_segments = segments_in_order(model_rate_chunks, plan, (channels,))
    stitch = StitchInOrder(plan)
    from_model = StreamResampler(network.config.sample_rate, sample_rate, channels)
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
