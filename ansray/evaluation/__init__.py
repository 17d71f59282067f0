"""Evaluation of enhanced audio against its noisy input and clean reference: pairing the files
(pairing.py), reference transcripts (transcripts.py), scoring them (scoring.py), summary statistics
(summary.py), plots (plots.py), and the run that jobs/evaluate.py drives (run.py). Needs the `eval`
extra, as ansray.metrics does; word error rates need the `asr` extra, baselines the `baseline` extra."""

from ansray.evaluation.pairing import (
    ENHANCED,
    PAIR_BY,
    EvaluationItem,
    Pairing,
    PairingError,
    Unpaired,
    as_systems,
    pair_files,
)
from ansray.evaluation.run import EvaluationConfig, EvaluationReport, default_metrics, run_evaluation
from ansray.evaluation.scoring import ItemScorer, score_item
from ansray.evaluation.summary import (
    Estimate,
    MetricSummary,
    SystemSummary,
    estimate,
    render_systems_table,
    render_table,
    summarize,
    summarize_systems,
)
from ansray.evaluation.transcripts import TranscriptError, attach_transcripts, read_transcripts

__all__ = [
    "ENHANCED",
    "PAIR_BY",
    "Estimate",
    "EvaluationConfig",
    "EvaluationItem",
    "EvaluationReport",
    "ItemScorer",
    "MetricSummary",
    "Pairing",
    "PairingError",
    "SystemSummary",
    "TranscriptError",
    "Unpaired",
    "as_systems",
    "attach_transcripts",
    "default_metrics",
    "estimate",
    "pair_files",
    "read_transcripts",
    "render_systems_table",
    "render_table",
    "run_evaluation",
    "score_item",
    "summarize",
    "summarize_systems",
]
