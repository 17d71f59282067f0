"""Evaluation of enhanced audio against its noisy input and clean reference: pairing the files
(pairing.py), scoring them (scoring.py), summary statistics (summary.py), plots (plots.py), and the run
that jobs/evaluate.py drives (run.py). Needs the `eval` extra, as ansray.metrics does."""

from ansray.evaluation.pairing import PAIR_BY, EvaluationItem, Pairing, PairingError, Unpaired, pair_files
from ansray.evaluation.run import EvaluationConfig, EvaluationReport, default_metrics, run_evaluation
from ansray.evaluation.scoring import ItemScorer, score_item
from ansray.evaluation.summary import Estimate, MetricSummary, estimate, render_table, summarize

__all__ = [
    "PAIR_BY",
    "Estimate",
    "EvaluationConfig",
    "EvaluationItem",
    "EvaluationReport",
    "ItemScorer",
    "MetricSummary",
    "Pairing",
    "PairingError",
    "Unpaired",
    "default_metrics",
    "estimate",
    "pair_files",
    "render_table",
    "run_evaluation",
    "score_item",
    "summarize",
]
