"""Scores one evaluation item: reads its files as mono, runs the baselines on its noisy input, computes
the chosen metrics and, with a recogniser, the word error rates, giving one flat results row per system.
The noisy and clean files are scored and transcribed once per item, whatever the number of systems; a
file that cannot be read gives rows with the reason instead."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ansray.asr import Recognizer, load_recognizer, transcribe
from ansray.baselines import BASELINES
from ansray.evaluation.pairing import PARTNER_ROLES, EvaluationItem
from ansray.io import AudioDecodeError, downmix, read_audio, resample
from ansray.metrics import DNSMOS, compute_metrics, word_error_rate
from ansray.metrics.compute import improvement_columns, measure

log = logging.getLogger(__name__)

ITEM_COLUMNS = (
    "key", "system", "enhanced_filepath", "noisy_filepath", "clean_filepath", "duration", "sample_rate", "error",
)
"""The columns that every results row starts with; the metric columns of compute_metrics follow, then,
with a recogniser, TRANSCRIPT_COLUMNS."""

TRANSCRIPT_COLUMNS = (
    "reference_text", "reference_source",
    "clean_transcript", "clean_wer", "clean_wer_error",
    "noisy_transcript", "noisy_wer", "noisy_wer_error",
    "transcript", "wer", "wer_error",
)
"""With a recogniser: the reference text and where it came from (REFERENCE_SOURCES), then each signal's
transcript and its word error rate in percent against the reference, NaN with a reason where there is
none. `transcript` and `wer` are the system's output's."""

REFERENCE_SOURCES = ("transcript", "clean speech")
"""The reference is the item's transcript where one is known, else the recogniser's transcript of the
clean file; the clean speech's WER is then 0 by construction."""


def read_partners(
    item: EvaluationItem, storage_options: dict | None = None
) -> tuple[dict[str, np.ndarray], int | None]:
    """The item's noisy and clean signals, those it has, each mono [T] float32 at the noisy file's rate
    (else the clean file's), and that rate; ({}, None) for an item with neither. Channels are averaged,
    as the metrics are defined on one channel. Raises AudioDecodeError for a file that cannot be read."""
    signals: dict[str, np.ndarray] = {}
    rate = None
    for role in PARTNER_ROLES:
        uri = getattr(item, role)
        if uri is not None:
            signals[role], rate = read_mono(uri, rate, storage_options)
    return signals, rate


def read_output(
    item: EvaluationItem,
    system: str,
    partners: dict[str, np.ndarray],
    rate: int | None,
    storage_options: dict | None = None,
) -> tuple[np.ndarray, int]:
    """The output of `system` for the item, mono [T] float32 at `rate` (its file's own rate where `rate`
    is None), and that rate: its file where the item has one, else the baseline of that name run on
    the noisy signal. Raises AudioDecodeError for a file that cannot be read."""
    if system in item.enhanced:
        return read_mono(item.enhanced[system], rate, storage_options)
    return BASELINES[system](partners["noisy"], rate), rate


def read_mono(uri: str, rate: int | None, storage_options: dict | None = None) -> tuple[np.ndarray, int]:
    """The file at `uri` downmixed to mono [T] float32 and resampled to `rate` (kept where None)."""
    data, file_rate, _ = read_audio(uri, storage_options=storage_options)
    rate = rate or file_rate
    return resample(downmix(data)[:, 0], file_rate, rate), rate


def read_item_signals(
    item: EvaluationItem, baselines: Sequence[str] = (), storage_options: dict | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Every signal of the item by role: noisy, then each system (files, then `baselines`), then clean;
    all at one rate (the noisy file's, else the clean's, else the first system's), and that rate.
    Raises AudioDecodeError for a file that cannot be read."""
    partners, rate = read_partners(item, storage_options)
    outputs = {}
    for system in [*item.enhanced, *baselines]:
        outputs[system], rate = read_output(item, system, partners, rate, storage_options)
    ordered = {"noisy": partners["noisy"]} if "noisy" in partners else {}
    ordered.update(outputs)
    if "clean" in partners:
        ordered["clean"] = partners["clean"]
    return ordered, rate


def score_item(
    item: EvaluationItem,
    metrics: Sequence[str],
    *,
    baselines: Sequence[str] = (),
    dnsmos: DNSMOS | None = None,
    recognizer: Recognizer | None = None,
    storage_options: dict | None = None,
) -> list[dict]:
    """The results rows of one item, one per system (the item's enhanced files, then `baselines`):
    ITEM_COLUMNS, then what compute_metrics gives for the system's output and, under a `noisy_` prefix,
    for the noisy input, then with a `recognizer` TRANSCRIPT_COLUMNS.

    An unreadable file leaves `error` with its URI and reason and no metric columns, in the system's row
    or, for a noisy or clean file, in every row; so does a metric or baseline that fails outright (the
    metrics return NaN with a reason for the cases they expect, and so does a failing recogniser)."""
    rows = [
        {
            "key": item.key,
            "system": system,
            "enhanced_filepath": item.enhanced.get(system),
            "noisy_filepath": item.noisy,
            "clean_filepath": item.clean,
            "duration": math.nan,
            "sample_rate": None,
            "error": None,
        }
        for system in [*item.enhanced, *baselines]
    ]
    try:
        partners, rate = read_partners(item, storage_options)
    except AudioDecodeError as error:
        for row in rows:
            row["error"] = f"unreadable: {error}"
        return rows
    partner_scores = None  # scored with the first output read, at its rate
    for row in rows:
        system = row["system"]
        try:
            output, output_rate = read_output(item, system, partners, rate, storage_options)
        except AudioDecodeError as error:
            row["error"] = f"unreadable: {error}"
            continue
        # One file's failure must not end an evaluation of thousands; the row carries it, the log the trace.
        except Exception as error:
            log.exception("baseline %s failed on %s", system, item.noisy)
            row["error"] = f"baseline {system} failed on {item.noisy}: {type(error).__name__}: {error}"
            continue
        row["duration"] = len(output) / output_rate
        row["sample_rate"] = output_rate
        try:
            if partner_scores is None:
                partner_scores = score_partners(partners, output_rate, item.text, metrics, dnsmos, recognizer)
            row.update(score_output(output, output_rate, partners, partner_scores, metrics, dnsmos, recognizer))
        except Exception as error:
            where = row["enhanced_filepath"] or f"{system} of {item.noisy}"
            log.exception("metrics failed on %s", where)
            row["error"] = f"metrics failed on {where}: {type(error).__name__}: {error}"
    return rows


@dataclass(frozen=True)
class PartnerScores:
    """What every system's row of an item shares: `columns` (the noisy input's metrics under a `noisy_`
    prefix, and with a recogniser the reference text and the noisy and clean transcripts), and the
    reference text for word error rates, or the reason there is none."""

    columns: dict
    reference: str | None = None
    reference_reason: str | None = None


def score_partners(
    partners: dict[str, np.ndarray],
    rate: int,
    text: str | None,
    metrics: Sequence[str],
    dnsmos: DNSMOS | None,
    recognizer: Recognizer | None,
) -> PartnerScores:
    """Scores the noisy input and transcribes the noisy and clean signals; `text` is the item's
    transcript, None where it has none."""
    columns: dict = {}
    if "noisy" in partners:
        scored = compute_metrics(partners["noisy"], rate, reference=partners.get("clean"), metrics=metrics,
                                 dnsmos=dnsmos)
        columns.update({"noisy_" + column: value for column, value in scored.items()})
    if recognizer is None:
        return PartnerScores(columns)
    transcripts = {role: _transcribe(recognizer, signal, rate) for role, signal in partners.items()}
    if text is not None:
        reference, source, reason = text, REFERENCE_SOURCES[0], None
    elif "clean" in transcripts:
        (reference, reason), source = transcripts["clean"], REFERENCE_SOURCES[1]
    else:
        reference, source, reason = None, None, "no reference text: the item has no transcript and no clean file"
    columns["reference_text"], columns["reference_source"] = reference, source
    for role in PARTNER_ROLES[::-1]:
        if role in transcripts:
            columns.update(_transcript_columns(f"{role}_", *transcripts[role], reference, reason))
    return PartnerScores(columns, reference, reason)


def score_output(
    output: np.ndarray,
    rate: int,
    partners: dict[str, np.ndarray],
    partner_scores: PartnerScores,
    metrics: Sequence[str],
    dnsmos: DNSMOS | None,
    recognizer: Recognizer | None,
) -> dict:
    """One system's row past ITEM_COLUMNS: its metrics, the partners' columns, and its transcript."""
    clean = partners.get("clean")
    columns = compute_metrics(output, rate, reference=clean, metrics=metrics, dnsmos=dnsmos)
    columns.update(partner_scores.columns)
    if "noisy" in partners:
        columns.update(improvement_columns(output, partners["noisy"], clean, metrics))
    if recognizer is not None:
        transcript, reason = _transcribe(recognizer, output, rate)
        columns.update(_transcript_columns("", transcript, reason, partner_scores.reference,
                                           partner_scores.reference_reason))
    return columns


def _transcribe(recognizer: Recognizer, audio: np.ndarray, rate: int) -> tuple[str | None, str | None]:
    """(transcript, None), or (None, reason) where the recogniser failed on this audio."""
    try:
        return transcribe(recognizer, audio, rate), None
    # A recogniser is the user's code: whatever it raises on one file is that file's reason.
    except Exception as error:
        log.exception("the recogniser failed")
        return None, f"the recogniser failed: {type(error).__name__}: {error}"


def _transcript_columns(
    prefix: str, transcript: str | None, reason: str | None, reference: str | None, reference_reason: str | None
) -> dict:
    """`<prefix>transcript`, and `<prefix>wer` with its `_error`: NaN with the reason where there is
    no transcript, no reference, or a reference without words."""
    if transcript is None or reference is None:
        wer, why = math.nan, reason or reference_reason
    else:
        wer, why = measure(word_error_rate, transcript, reference)
    return {prefix + "transcript": transcript, prefix + "wer": wer, prefix + "wer_error": why}


class ItemScorer:
    """Ray Data callable class: scores a batch of items. One DNSMOS scorer and one recogniser per actor,
    built here once (DNSMOS with one onnxruntime thread, as each actor has one CPU)."""

    def __init__(
        self,
        metrics: Sequence[str],
        storage_options: dict | None = None,
        baselines: Sequence[str] = (),
        asr: str | None = None,
        asr_options: dict | None = None,
    ):
        self.metrics = tuple(metrics)
        self.baselines = tuple(baselines)
        self.dnsmos = DNSMOS(num_threads=1) if "dnsmos" in self.metrics else None
        self.recognizer = load_recognizer(asr, asr_options) if asr else None
        self.storage_options = storage_options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """`batch["item"]` holds EvaluationItems as JSON (a missing URI would come back from Ray Data as
        NaN); returns their results rows as JSON, as rows with and without an error differ in columns."""
        rows = []
        for item in batch["item"]:
            rows += score_item(
                EvaluationItem(**json.loads(item)), self.metrics, baselines=self.baselines, dnsmos=self.dnsmos,
                recognizer=self.recognizer, storage_options=self.storage_options,
            )
        return {"row": [json.dumps(row) for row in rows]}
