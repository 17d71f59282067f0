"""The denoise job's model stage: a Ray Data actor holding one FRCRN replica (GPU or CPU).

The model arrives as weights through Ray's object store, so no node needs the checkpoint's path. Ray
Data calls the actor with whole bundles; the actor runs their segments through the model `batch_size`
at a time, so that a CPU actor computes one segment at a time while being called with many.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from ansray.allocator import retain_freed_memory
from ansray.denoise.bundles import add_polarity_sums, as_batch, bundles_from_rows
from ansray.model import enhance_batch, inference_model, model_from_weights


class SegmentEnhancer:
    def __init__(self, weights, dtype: str = "float32", threads: int = 1, batch_size: int = 1):
        import ray
        import torch

        if isinstance(weights, ray.ObjectRef):
            weights = ray.get(weights)
        use_gpu = torch.cuda.is_available()
        if not use_gpu:
            torch.set_num_threads(max(1, threads))
            retain_freed_memory()  # the actor's process is ours: reuse activation memory between segments
        self.dtype = dtype
        self.batch_size = batch_size
        self.model = inference_model(model_from_weights(weights, device="cuda" if use_gpu else "cpu"))

    def enhance(self, segments: np.ndarray) -> np.ndarray:
        """[n, samples] -> [n, samples] enhanced, `batch_size` rows per model call."""
        return np.concatenate([enhance_batch(self.model, segments[i : i + self.batch_size], self.dtype)
                               for i in range(0, len(segments), self.batch_size)])

    def __call__(self, batch: dict) -> dict:
        started = time.monotonic()
        bundles = bundles_from_rows(batch)
        # Segments of one length (one plan's) run together, across every bundle and file of the call.
        by_length = defaultdict(list)
        for b, bundle in enumerate(bundles):
            for e, (entry, segments) in enumerate(bundle.segments()):
                if len(segments):
                    by_length[segments.shape[-1]].append((b, e, entry, segments))
        outputs = {}
        for length, members in by_length.items():
            stacked = np.concatenate([segments.reshape(-1, length) for *_, segments in members])
            enhanced = self.enhance(stacked)
            offset = 0
            for b, e, entry, segments in members:
                size = segments.shape[0] * segments.shape[1]
                outputs[b, e] = enhanced[offset : offset + size].reshape(segments.shape)
                add_polarity_sums(entry, segments, outputs[b, e])
                offset += size
        total = sum(len(out) for out in outputs.values()) or 1
        seconds = time.monotonic() - started
        for b, bundle in enumerate(bundles):
            parts = []
            for e, entry in enumerate(bundle.entries):
                if (b, e) in outputs:
                    parts.append(outputs[b, e].ravel())
                    entry.seconds += seconds * len(outputs[b, e]) / total
            bundle.audio = np.concatenate(parts) if parts else bundle.audio
        return as_batch(bundles)
