"""Optional no-reference quality scores for the denoise manifest (`--quality dnsmos`).

Archives have no clean reference, so the job rates each file before and after with DNSMOS (P.835
SIG/BAK/OVRL and P.808), the DNS Challenge's non-intrusive predictor. With both in the manifest a
user can keep the original wherever enhancement scored lower. Scoring needs the `eval` extra; it is
imported only when asked for, so the job itself does not depend on it.
"""

from __future__ import annotations

import math

import numpy as np

QUALITY_MEASURES = ("dnsmos",)
DNSMOS_FIELDS = ("sig", "bak", "ovrl", "p808")
# DNSMOS runs its models once per second of audio (9 s windows), a few tenths of a CPU-second each: slower than
# a small denoiser. Files up to 69 s are scored exactly as the reference script does; longer ones on
# this many windows spread evenly over the file, which bounds the cost per file.
DNSMOS_MAX_WINDOWS = 60


def dnsmos_column(field: str, when: str) -> str:
    """The manifest column of one DNSMOS score, e.g. `dnsmos_ovrl_after`."""
    return f"dnsmos_{field}_{when}"


def check_quality(measures: tuple[str, ...]) -> None:
    """Fails before any work if a measure is unknown or its models cannot be loaded."""
    unknown = set(measures) - set(QUALITY_MEASURES)
    if unknown:
        raise ValueError(f"unknown quality measure(s) {sorted(unknown)}; choose from {QUALITY_MEASURES}")
    if "dnsmos" in measures:
        from ansray.metrics.dnsmos import process_dnsmos

        process_dnsmos()  # ImportError naming the eval extra, or DNSMOSModelError


def has_quality(row: dict, measures: tuple[str, ...]) -> bool:
    """Whether a manifest row already carries the scores of `measures`."""
    return "dnsmos" not in measures or dnsmos_column("ovrl", "after") in row


def quality_columns(noisy: np.ndarray, enhanced: np.ndarray, sample_rate: int, measures: tuple[str, ...]) -> dict:
    """Scores of the input and the output, [channels, T] each at `sample_rate`, as manifest columns.

    Multichannel files are scored on their channel mean, the signal a mono listener or ASR front end
    hears; files over a minute on `DNSMOS_MAX_WINDOWS` windows. A score that is undefined (a silent
    file) is null, with the reason in `dnsmos_reason`.
    """
    columns: dict = {}
    if "dnsmos" not in measures:
        return columns
    from ansray.metrics.dnsmos import process_dnsmos

    scorer = process_dnsmos()  # one onnxruntime session pair per worker process, reused across files
    reasons = []
    for when, audio in (("before", noisy), ("after", enhanced)):
        scores = scorer(np.mean(audio, axis=0), sample_rate, max_windows=DNSMOS_MAX_WINDOWS)
        for name in DNSMOS_FIELDS:
            value = getattr(scores, name)
            columns[dnsmos_column(name, when)] = None if math.isnan(value) else round(value, 4)
        if scores.reason:
            reasons.append(f"{when}: {scores.reason}")
    columns["dnsmos_reason"] = "; ".join(reasons) or None
    return columns
