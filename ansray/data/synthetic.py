"""Synthetic stand-ins for speech and noise corpora, for tests, benchmarks and starter corpora.

Not speech: harmonic tones with a syllable-rate envelope and pauses, so that activity detection,
levels and SNRs behave as they do on real utterances.
"""

from __future__ import annotations

import numpy as np

NOISE_COLOURS = ("white", "pink", "brown")


def synthetic_speech(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """A speech-like signal [T] float32 with peak 0.5: a gliding harmonic tone, 3-6 syllables per
    second, with pauses of 0.1-0.4 s between words."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    pitch = rng.uniform(90, 240) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 9))
    syllables = np.abs(np.sin(np.pi * rng.uniform(3, 6) * t)) ** 1.5
    words = np.ones(n)
    position = int(rng.uniform(0.3, 1.0) * sample_rate)
    while position < n:
        pause = int(rng.uniform(0.1, 0.4) * sample_rate)
        words[position : position + pause] = 0.0
        position += pause + int(rng.uniform(0.4, 1.5) * sample_rate)
    speech = harmonics * syllables * words
    return (0.5 * speech / (np.max(np.abs(speech)) + 1e-12)).astype(np.float32)


def synthetic_noise(
    rng: np.random.Generator, seconds: float, sample_rate: int = 16000, colour: str = "pink"
) -> np.ndarray:
    """Coloured Gaussian noise [T] float32 with peak 0.5 and a slow (0.1-1 Hz) level modulation."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"colour must be one of {NOISE_COLOURS}, got {colour!r}")
    n = int(round(seconds * sample_rate))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / sample_rate), 20.0)
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[colour]
    noise = np.fft.irfft(spectrum / freqs**exponent, n)
    t = np.arange(n) / sample_rate
    noise *= 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t)
    return (0.5 * noise / (np.max(np.abs(noise)) + 1e-12)).astype(np.float32)
