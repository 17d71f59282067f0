"""The evaluation run: pair the files, score them on a Ray Data actor pool, and write the results table
(Parquet and CSV), the unpaired files, summary.md and the plots under one output folder."""

from __future__ import annotations

import io
import json
import logging
import math
import posixpath
import time
from dataclasses import asdict, dataclass, field

import pandas as pd

from ansray.evaluation.pairing import (
    PAIR_BY,
    EvaluationItem,
    Pairing,
    PairingError,
    Unpaired,
    is_manifest,
    pair_files,
)
from ansray.evaluation.plots import plot_distributions, plot_spectrograms
from ansray.evaluation.scoring import ITEM_COLUMNS, ItemScorer, read_item_signals
from ansray.evaluation.summary import CONFIDENCE, MetricSummary, render_table, summarize
from ansray.io import AudioDecodeError, join_uri, write_bytes_atomic
from ansray.metrics import METRIC_COLUMNS, METRICS
from ansray.metrics.compute import NEEDS_REFERENCE

log = logging.getLogger(__name__)

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
UNPAIRED_CSV = "unpaired.csv"
SUMMARY_MD = "summary.md"
DISTRIBUTIONS_PNG = "plots/distributions.png"
SPECTROGRAMS = "plots/spectrograms"
ITEMS_PER_BLOCK = 16  # an actor takes a block at a time: small blocks keep the whole pool busy to the end
_LISTED_IN_SUMMARY = 20  # errors and unpaired files named in summary.md; the CSVs hold them all


def default_metrics(has_clean: bool) -> tuple[str, ...]:
    """Every metric where there is a clean reference; DNSMOS, which needs none, where there is not."""
    return METRICS if has_clean else ("dnsmos",)


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and where to write it. `enhanced` is a folder, prefix or glob, or the denoise
    job's manifest (then `noisy` is None: the manifest names each input). `examples` files get
    before/after spectrograms."""

    enhanced: str
    output: str
    noisy: str | None = None
    clean: str | None = None
    metrics: tuple[str, ...] = METRICS
    examples: int = 3
    pair_by: str = "key"

    def __post_init__(self):
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be some of {list(METRICS)}, got {list(self.metrics)}")
        needing = [metric for metric in self.metrics if metric in NEEDS_REFERENCE]
        if needing and self.clean is None:
            raise ValueError(f"{needing} compare against a clean reference: give clean, or use only dnsmos")
        if is_manifest(self.enhanced) and self.noisy is not None:
            raise ValueError("with the denoise manifest as enhanced, its rows name the noisy inputs: drop noisy")
        if self.pair_by not in PAIR_BY:
            raise ValueError(f"pair_by must be one of {PAIR_BY}, got {self.pair_by!r}")
        if self.examples < 0:
            raise ValueError(f"examples must not be negative, got {self.examples}")


@dataclass
class EvaluationReport:
    """What a run did: files scored and failed, files unpaired, the summaries, and what it wrote."""

    scored: int
    errors: dict[str, str]
    unpaired: list[Unpaired]
    summaries: list[MetricSummary]
    table: str
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_evaluation(
    cfg: EvaluationConfig, *, workers: int | None = None, storage_options: dict | None = None
) -> EvaluationReport:
    """Evaluates on the connected Ray cluster (ray.init first) and writes everything under `cfg.output`.

    `workers`: actors in the pool, each holding one DNSMOS (default: the cluster's CPUs, at most one
    per file). Raises PairingError when not one file pairs up."""
    started = time.monotonic()
    pairing = pair_files(cfg.enhanced, cfg.noisy, cfg.clean, pair_by=cfg.pair_by, storage_options=storage_options)
    if not pairing.items:
        reasons = "; ".join(f"{u.uri}: {u.reason}" for u in pairing.unpaired[:3])
        raise PairingError(f"nothing to evaluate: no enhanced file has all its partners ({reasons})")
    log.info("%d files to evaluate, %d unpaired", len(pairing.items), len(pairing.unpaired))

    results = score_items(pairing.items, cfg.metrics, workers=workers, storage_options=storage_options)
    summaries = summarize(results, cfg.metrics)
    scored, failed = results[results["error"].isna()], results[results["error"].notna()]
    errors = dict(zip(failed["key"], failed["error"]))
    report = EvaluationReport(len(scored), errors, pairing.unpaired, summaries, render_table(summaries))

    def write(name: str, data: bytes) -> None:
        uri = join_uri(cfg.output, name)
        write_bytes_atomic(uri, data, storage_options)
        report.outputs.append(uri)

    parquet = io.BytesIO()
    results.to_parquet(parquet, index=False)
    write(RESULTS_PARQUET, parquet.getvalue())
    write(RESULTS_CSV, results.to_csv(index=False).encode())
    unpaired = pd.DataFrame([asdict(u) for u in pairing.unpaired], columns=["uri", "role", "reason"])
    write(UNPAIRED_CSV, unpaired.to_csv(index=False).encode())

    plots = []
    columns = [summary.column for summary in summaries]
    if len(scored):
        write(DISTRIBUTIONS_PNG, plot_distributions(scored, columns))
        plots.append(DISTRIBUTIONS_PNG)
    for item in _examples(pairing, scored, cfg.examples):
        try:
            signals, rate = read_item_signals(item, storage_options)
        except AudioDecodeError as error:  # changed since it was scored
            log.warning("no spectrogram for %s: %s", item.key, error)
            continue
        name = f"{SPECTROGRAMS}/{posixpath.splitext(item.key)[0]}.png"
        ordered = {role: signals[role] for role in ("noisy", "enhanced", "clean") if role in signals}
        write(name, plot_spectrograms(ordered, rate, item.key))
        plots.append(name)

    write(SUMMARY_MD, render_summary(cfg, report, plots).encode())
    report.seconds = time.monotonic() - started
    return report


def score_items(
    items: list[EvaluationItem],
    metrics: tuple[str, ...],
    *,
    workers: int | None = None,
    storage_options: dict | None = None,
) -> pd.DataFrame:
    """The results table, one row per item in key order: ITEM_COLUMNS, then the metric columns."""
    import ray

    workers = min(len(items), workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
    rows = [{"item": json.dumps(asdict(item))} for item in items]
    blocks = min(len(items), max(4 * workers, math.ceil(len(items) / ITEMS_PER_BLOCK)))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    dataset = dataset.map_batches(
        ItemScorer,
        fn_constructor_args=(metrics, storage_options),
        batch_size=1,  # a file takes a second or more to score: spread them one by one
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    rows = [json.loads(result["row"]) for result in dataset.iter_rows()]
    results = pd.DataFrame(rows).astype({"sample_rate": "Int64"})  # None for an unreadable file
    metric_columns = [column for column in results.columns if column not in ITEM_COLUMNS]
    return results[list(ITEM_COLUMNS) + metric_columns].sort_values("key", ignore_index=True)


def render_summary(cfg: EvaluationConfig, report: EvaluationReport, plots: list[str]) -> str:
    """summary.md: what was compared, the table, the plots, and the files that failed or were unpaired."""
    sources = [f"- enhanced: `{cfg.enhanced}`"]
    sources += [f"- {role}: `{uri}`" for role, uri in (("noisy", cfg.noisy), ("clean", cfg.clean)) if uri]
    columns = ", ".join(f"`{column}`" for metric in cfg.metrics for column in METRIC_COLUMNS[metric])
    lines = [
        "# Evaluation summary",
        "",
        *sources,
        "",
        (f"{report.scored} files scored, {len(report.errors)} failed, {len(report.unpaired)} unpaired. "
         f"Metrics: {columns}."),
        "",
        render_table(report.summaries),
        (f"Mean with its {CONFIDENCE:.0%} Student-t confidence interval, and median, over the files; "
         "Δ is the per-file difference enhanced - noisy (paired t-interval). Higher is better for every metric."),
        "",
    ]
    lines += [f"![{plot}]({plot})" for plot in plots]
    for title, entries in (
        ("Failed files", [f"{key}: {reason}" for key, reason in report.errors.items()]),
        ("Unpaired files", [f"{u.uri} ({u.role}): {u.reason}" for u in report.unpaired]),
    ):
        if entries:
            lines += ["", f"## {title}", ""]
            lines += [f"- {entry}" for entry in entries[:_LISTED_IN_SUMMARY]]
            if len(entries) > _LISTED_IN_SUMMARY:
                lines.append(f"- ... and {len(entries) - _LISTED_IN_SUMMARY} more in {RESULTS_CSV} and {UNPAIRED_CSV}")
    return "\n".join(lines) + "\n"


def _examples(pairing: Pairing, scored: pd.DataFrame, count: int) -> list[EvaluationItem]:
    """The first `count` scored items in key order."""
    keys = set(scored["key"].head(count))
    return [item for item in pairing.items if item.key in keys]
