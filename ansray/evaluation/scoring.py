"""Scores one evaluation item: reads its files as mono at the enhanced file's rate and computes the chosen
metrics, giving one flat results row; a file that cannot be read gives a row with the reason instead."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence

import numpy as np

from ansray.evaluation.pairing import ROLES, EvaluationItem
from ansray.io import AudioDecodeError, downmix, read_audio, resample
from ansray.metrics import DNSMOS, compute_metrics

log = logging.getLogger(__name__)

ITEM_COLUMNS = ("key", "enhanced_filepath", "noisy_filepath", "clean_filepath", "duration", "sample_rate", "error")
"""The columns that every results row starts with; the metric columns of compute_metrics follow."""


def read_item_signals(
    item: EvaluationItem, storage_options: dict | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """The item's signals by role (enhanced, and noisy and clean where it has them), each mono [T] float32
    at the enhanced file's rate, and that rate. Channels are averaged, as the metrics are defined on one
    channel. Raises AudioDecodeError for a file that cannot be read."""
    signals = {}
    rate = None
    for role in ROLES:
        uri = getattr(item, role)
        if uri is None:
            continue
        data, file_rate, _ = read_audio(uri, storage_options=storage_options)
        rate = rate or file_rate
        signals[role] = resample(downmix(data)[:, 0], file_rate, rate)
    return signals, rate


def score_item(
    item: EvaluationItem,
    metrics: Sequence[str],
    dnsmos: DNSMOS | None = None,
    storage_options: dict | None = None,
) -> dict:
    """The results row of one item: ITEM_COLUMNS, then what compute_metrics gives for it.

    An unreadable file leaves `error` with its URI and reason, and no metric columns; so does a
    metric that fails outright (the metrics return NaN with a reason for the cases they expect)."""
    row = {
        "key": item.key,
        "enhanced_filepath": item.enhanced,
        "noisy_filepath": item.noisy,
        "clean_filepath": item.clean,
        "duration": math.nan,
        "sample_rate": None,
        "error": None,
    }
    try:
        signals, rate = read_item_signals(item, storage_options)
    except AudioDecodeError as error:
        row["error"] = f"unreadable: {error}"
        return row
    row["duration"] = len(signals["enhanced"]) / rate
    row["sample_rate"] = rate
    try:
        row.update(compute_metrics(
            signals["enhanced"], rate, reference=signals.get("clean"), noisy=signals.get("noisy"),
            metrics=metrics, dnsmos=dnsmos,
        ))
    # One file's failure must not end an evaluation of thousands; the row carries it, the log the trace.
    except Exception as error:
        log.exception("metrics failed on %s", item.enhanced)
        row["error"] = f"metrics failed on {item.enhanced}: {type(error).__name__}: {error}"
    return row


class ItemScorer:
    """Ray Data callable class: scores a batch of items. One DNSMOS scorer per actor, built here once,
    with one onnxruntime thread, as each actor has one CPU."""

    def __init__(self, metrics: Sequence[str], storage_options: dict | None = None):
        self.metrics = tuple(metrics)
        self.dnsmos = DNSMOS(num_threads=1) if "dnsmos" in self.metrics else None
        self.storage_options = storage_options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """`batch["item"]` holds EvaluationItems as JSON (a missing URI would come back from Ray Data as
        NaN); returns their results rows as JSON, as rows with and without an error differ in columns."""
        items = [EvaluationItem(**json.loads(item)) for item in batch["item"]]
        rows = [score_item(item, self.metrics, self.dnsmos, self.storage_options) for item in items]
        return {"row": [json.dumps(row) for row in rows]}
