"""RNNoise (Valin, "A Hybrid DSP/Deep Learning Approach to Real-Time Full-Band Speech Enhancement",
MMSP 2018) as a baseline: the C library and model bundled in the `pyrnnoise` package (the `baseline`
extra), run over a whole signal at any rate and aligned with its input."""

from __future__ import annotations

import ctypes

import numpy as np

from ansray.extras import require_package
from ansray.io.resample import resample

RNNOISE_SAMPLE_RATE = 48000
RNNOISE_FRAME = 480
"""RNNoise takes 10 ms frames at 48 kHz."""

RNNOISE_DELAY = 960
"""Samples at 48 kHz by which RNNoise's output lags its input: 20 ms, measured on pyrnnoise 0.4.5 with an
impulse and by cross-correlation on speech (tests/test_baselines.py). Not the 10 ms (one frame of
overlap-add) of RNNoise 0.1: the library pyrnnoise bundles lags one frame more."""

_INT16_SCALE = 32768.0  # RNNoise works on float samples at 16-bit PCM scale


def rnnoise_denoise(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """RNNoise's output for a mono signal `audio` [T] at `sample_rate`: [T] float32 at that rate.

    The signal is resampled to 48 kHz, run through RNNoise, shifted back by RNNOISE_DELAY (the input
    is padded with that many zeros, so its end comes out too) and resampled back."""
    signal = np.asarray(audio, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"audio must be mono, [T]; got shape {signal.shape}")
    at_48k = resample(signal, sample_rate, RNNOISE_SAMPLE_RATE)
    delayed = run_rnnoise(np.pad(at_48k, (0, RNNOISE_DELAY)))
    back = resample(delayed[RNNOISE_DELAY:], RNNOISE_SAMPLE_RATE, sample_rate)
    # A round trip through 48 kHz can come back a sample longer or shorter.
    return np.pad(back[: len(signal)], (0, max(0, len(signal) - len(back))))


def run_rnnoise(at_48k: np.ndarray) -> np.ndarray:
    """RNNoise's raw output for mono 48 kHz audio [T] in [-1, 1]: [T] float32, RNNOISE_DELAY samples
    late. One RNNoise state runs over the frames in order; the last frame is zero-padded. Samples keep
    float precision: nothing is rounded or clipped to 16 bits."""
    library = require_package("pyrnnoise.rnnoise", "baseline", needed_by="the RNNoise baseline")
    if library.FRAME_SIZE != RNNOISE_FRAME:
        raise RuntimeError(f"pyrnnoise's RNNoise takes {library.FRAME_SIZE}-sample frames, not {RNNOISE_FRAME}")
    frames = -(-len(at_48k) // RNNOISE_FRAME)
    padded = np.zeros(frames * RNNOISE_FRAME, dtype=np.float32)
    padded[: len(at_48k)] = np.asarray(at_48k, dtype=np.float32) * _INT16_SCALE
    denoised = np.empty_like(padded)
    state = library.create()
    try:
        for start in range(0, len(padded), RNNOISE_FRAME):
            frame_in = padded[start : start + RNNOISE_FRAME]
            frame_out = denoised[start : start + RNNOISE_FRAME]
            library.lib.rnnoise_process_frame(state, _float_pointer(frame_out), _float_pointer(frame_in))
    finally:
        library.destroy(state)
    return denoised[: len(at_48k)] / _INT16_SCALE


def _float_pointer(frame: np.ndarray):
    return frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
