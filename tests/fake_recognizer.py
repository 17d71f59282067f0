"""A stand-in speech recogniser for the plug-in interface of ansray.asr: its "words" are the loudness of
each 100 ms of the 16 kHz audio it is given, so noise changes them and the same audio gives the same text."""

import os
import uuid
from pathlib import Path

import numpy as np

BLOCK = 1600  # 100 ms at 16 kHz
LOUD_DBFS = -35.0


def loudness_words(audio: np.ndarray) -> str:
    """A recogniser: 'loud' or 'soft' for each whole 100 ms block of `audio` (float32 [T] at 16 kHz)."""
    if audio.dtype != np.float32 or audio.ndim != 1:
        raise TypeError(f"expected float32 mono audio, got {audio.dtype} {audio.shape}")
    blocks = audio[: len(audio) // BLOCK * BLOCK].reshape(-1, BLOCK).astype(np.float64)
    levels = 10 * np.log10(np.maximum(np.mean(blocks**2, axis=1), 1e-12))
    return " ".join("loud" if level > LOUD_DBFS else "soft" for level in levels)


def make_recognizer(log_dir: str):
    """A factory: each recogniser it builds logs its construction and each call under `log_dir`, one
    file per recogniser, so a test can count them."""
    log = Path(log_dir) / f"{os.getpid()}-{uuid.uuid4().hex}.log"
    log.write_text("")

    def recognize(audio: np.ndarray) -> str:
        with log.open("a") as calls:
            calls.write(f"{len(audio)}\n")
        return loudness_words(audio)

    return recognize


def make_default_recognizer():
    """A factory without options."""
    return loudness_words


def not_text(audio: np.ndarray) -> list:
    """A broken recogniser: returns words as a list."""
    return ["loud"]
