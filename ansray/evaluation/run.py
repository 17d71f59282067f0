"""The evaluation run: pair the files, score them on a Ray Data actor pool, and write the results table
(Parquet and CSV), the unpaired files, summary.md and the plots under one output folder."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import math
import posixpath
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

from ansray.asr import resolve_recognizer
from ansray.baselines import BASELINES
from ansray.evaluation.pairing import (
    PAIR_BY, EvaluationItem, PairingError, Unpaired, as_systems, check_system_names, is_manifest, pair_files,
)
from ansray.evaluation.plots import plot_distributions, plot_spectrograms, plot_systems
from ansray.evaluation.scoring import ITEM_COLUMNS, REFERENCE_SOURCES, ItemScorer, read_item_signals
from ansray.evaluation.summary import (
    CONFIDENCE,
    HEADLINE_COLUMNS,
    LOWER_IS_BETTER,
    MetricSummary,
    SystemSummary,
    render_systems_table,
    render_table,
    summarize_systems,
)
from ansray.evaluation.transcripts import attach_transcripts, is_json_lines, read_transcripts
from ansray.extras import extra_hint
from ansray.io import AudioDecodeError, join_uri, write_bytes_atomic
from ansray.metrics import METRIC_COLUMNS, METRICS
from ansray.metrics.compute import NEEDS_REFERENCE

log = logging.getLogger(__name__)

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
UNPAIRED_CSV = "unpaired.csv"
SUMMARY_MD = "summary.md"
DISTRIBUTIONS_PNG = "plots/distributions.png"
SYSTEMS_PNG = "plots/systems.png"
SPECTROGRAMS = "plots/spectrograms"
ITEMS_PER_BLOCK = 16  # an actor takes a block at a time: small blocks keep the whole pool busy to the end
_LISTED_IN_SUMMARY = 20  # errors and unpaired files named in summary.md; the CSVs hold them all


def default_metrics(has_clean: bool) -> tuple[str, ...]:
    """Every metric where there is a clean reference; DNSMOS, which needs none, where there is not."""
    return METRICS if has_clean else ("dnsmos",)


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and where to write it.

    `enhanced` is one enhanced set, or several by system name (see pairing.as_systems): each a folder,
    prefix or glob, or the denoise job's manifest (then `noisy` is None: the manifest names each
    input). `baselines` (names of ansray.baselines.BASELINES) run on the noisy files as further
    systems. `asr` is a recogniser spec (ansray.asr: "pocketsphinx" or "module.path:name", built with
    `asr_options`) for word error rates against `transcripts` (a transcripts file; see
    evaluation/transcripts.py), the `text` of a NeMo manifest given as noisy or clean, or else the
    recogniser's transcript of the clean file. `examples` files get before/after spectrograms."""

    enhanced: str | Mapping[str, str] | None
    output: str
    noisy: str | None = None
    clean: str | None = None
    metrics: tuple[str, ...] = METRICS
    examples: int = 3
    pair_by: str = "key"
    baselines: tuple[str, ...] = ()
    asr: str | None = None
    asr_options: dict | None = None
    transcripts: str | None = None

    def __post_init__(self):
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be some of {list(METRICS)}, got {list(self.metrics)}")
        needing = [metric for metric in self.metrics if metric in NEEDS_REFERENCE]
        if needing and self.clean is None:
            raise ValueError(f"{needing} compare against a clean reference: give clean, or use only dnsmos")
        manifests = [uri for uri in self.systems.values() if is_manifest(uri)]
        if manifests and self.noisy is not None:
            raise ValueError("with the denoise manifest as enhanced, its rows name the noisy inputs: drop noisy")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"baselines must be some of {list(BASELINES)}, got {list(self.baselines)}")
        check_system_names([*self.systems, *self.baselines])
        if not self.systems and not self.baselines:
            raise ValueError("nothing to evaluate: give an enhanced set or a baseline")
        if self.baselines and self.noisy is None and not manifests:
            raise ValueError("baselines run on the noisy files: give noisy (or a denoise manifest as enhanced)")
        if self.pair_by not in PAIR_BY:
            raise ValueError(f"pair_by must be one of {PAIR_BY}, got {self.pair_by!r}")
        if self.examples < 0:
            raise ValueError(f"examples must not be negative, got {self.examples}")
        self._check_asr()
        needed = [("pyrnnoise", "baseline", "the rnnoise baseline")] if "rnnoise" in self.baselines else []
        needed += [("jiwer", "asr", "the word error rate")] if self.asr else []
        for package, extra, needed_by in needed:
            if importlib.util.find_spec(package) is None:
                raise ValueError(f"{needed_by} needs the package {package!r}; {extra_hint(extra)}")

    def _check_asr(self) -> None:
        if self.asr is None:
            if self.asr_options or self.transcripts:
                raise ValueError("asr options and transcripts are for word error rates: give asr too")
            return
        texts_possible = any(uri and is_json_lines(uri) for uri in (self.noisy, self.clean))
        if self.clean is None and self.transcripts is None and not texts_possible:
            raise ValueError("word error rates need reference text: give transcripts, or clean files to transcribe")
        resolve_recognizer(self.asr)  # a RecognizerError (a ValueError) names what is wrong

    @property
    def systems(self) -> dict[str, str]:
        """The enhanced sets by system name (the baselines follow them)."""
        return as_systems(self.enhanced)

    @property
    def system_names(self) -> list[str]:
        return [*self.systems, *self.baselines]

    @property
    def columns(self) -> list[str]:
        """The metric columns summarised: those of the chosen metrics, then WER with a recogniser."""
        columns = [column for metric in self.metrics for column in METRIC_COLUMNS[metric]]
        return columns + (["wer"] if self.asr else [])


@dataclass
class EvaluationReport:
    """What a run did: outputs scored (one per file and system) and failed (by (key, system)), files
    unpaired, the summaries per system, the systems table's rows, and what it wrote."""

    scored: int
    errors: dict[tuple[str, str], str]
    unpaired: list[Unpaired]
    summaries: dict[str, list[MetricSummary]]
    systems: list[SystemSummary]
    table: str
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_evaluation(
    cfg: EvaluationConfig, *, workers: int | None = None, storage_options: dict | None = None
) -> EvaluationReport:
    """Evaluates on the connected Ray cluster (ray.init first) and writes everything under `cfg.output`.

    `workers`: actors in the pool, each holding one DNSMOS and one recogniser (default: the cluster's
    CPUs, at most one per file). Raises PairingError when not one file pairs up."""
    started = time.monotonic()
    pairing = pair_files(cfg.systems, cfg.noisy, cfg.clean, pair_by=cfg.pair_by, storage_options=storage_options)
    if not pairing.items:
        reasons = "; ".join(f"{u.uri}: {u.reason}" for u in pairing.unpaired[:3])
        raise PairingError(f"nothing to evaluate: no input has all its files ({reasons})")
    log.info("%d files to evaluate, %d unpaired", len(pairing.items), len(pairing.unpaired))
    items = pairing.items
    if cfg.asr:
        items = attach_transcripts(items, transcript_sources(cfg, storage_options))
        known = sum(item.text is not None for item in items)
        log.info("%d of %d files have a reference transcript", known, len(items))

    results = score_items(items, cfg, workers=workers, storage_options=storage_options)
    systems = cfg.system_names
    summaries, system_rows = summarize_systems(results, cfg.columns, systems)
    scored, failed = results[results["error"].isna()], results[results["error"].notna()]
    errors = {(key, system): error for key, system, error in zip(failed["key"], failed["system"], failed["error"])}
    report = EvaluationReport(len(scored), errors, pairing.unpaired, summaries, system_rows,
                              render_tables(summaries, system_rows))

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
    columns = [column for column in cfg.columns if column in results]
    if len(scored):
        write(DISTRIBUTIONS_PNG, plot_distributions(scored, columns, systems))
        plots.append(DISTRIBUTIONS_PNG)
        headline = [column for column in HEADLINE_COLUMNS if column in columns]
        if headline:
            write(SYSTEMS_PNG, plot_systems(system_rows, headline))
            plots.append(SYSTEMS_PNG)
    for item in _examples(items, scored, cfg.examples):
        try:
            signals, rate = read_item_signals(item, cfg.baselines, storage_options)
        except AudioDecodeError as error:  # changed since it was scored
            log.warning("no spectrogram for %s: %s", item.key, error)
            continue
        name = f"{SPECTROGRAMS}/{posixpath.splitext(item.key)[0]}.png"
        write(name, plot_spectrograms(signals, rate, item.key))
        plots.append(name)

    write(SUMMARY_MD, render_summary(cfg, report, results, plots).encode())
    report.seconds = time.monotonic() - started
    return report


def transcript_sources(cfg: EvaluationConfig, storage_options: dict | None = None) -> list[dict]:
    """The reference transcripts, in the order they are consulted: the transcripts file, then the `text`
    of a NeMo manifest given as the clean files, then as the noisy files."""
    uris = [cfg.transcripts] + [uri for uri in (cfg.clean, cfg.noisy) if uri and is_json_lines(uri)]
    return [read_transcripts(uri, storage_options) for uri in uris if uri]


def score_items(
    items: list[EvaluationItem],
    cfg: EvaluationConfig,
    *,
    workers: int | None = None,
    storage_options: dict | None = None,
) -> pd.DataFrame:
    """The results table, one row per item and system, by key and then in the order of
    cfg.system_names: ITEM_COLUMNS, then the metric columns."""
    import ray

    workers = min(len(items), workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
    rows = [{"item": json.dumps(asdict(item))} for item in items]
    blocks = min(len(items), max(4 * workers, math.ceil(len(items) / ITEMS_PER_BLOCK)))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    dataset = dataset.map_batches(
        ItemScorer,
        fn_constructor_args=(cfg.metrics, storage_options, cfg.baselines, cfg.asr, cfg.asr_options),
        batch_size=1,  # a file takes a second or more to score: spread them one by one
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    rows = [json.loads(result["row"]) for result in dataset.iter_rows()]
    results = pd.DataFrame(rows).astype({"sample_rate": "Int64"})  # None for an unreadable file
    order = {system: index for index, system in enumerate(cfg.system_names)}
    results = results.sort_values(["key", "system"], key=lambda c: c.map(order) if c.name == "system" else c,
                                  ignore_index=True)
    metric_columns = [column for column in results.columns if column not in ITEM_COLUMNS]
    return results[list(ITEM_COLUMNS) + metric_columns]


def render_tables(summaries: dict[str, list[MetricSummary]], system_rows: list[SystemSummary]) -> str:
    """The systems table, then each system's table of every metric under its name."""
    parts = ["## Systems", "", render_systems_table(system_rows)]
    for system, system_summaries in summaries.items():
        parts += [f"## {system}: every metric", "", render_table(system_summaries)]
    return "\n".join(parts)


def render_summary(cfg: EvaluationConfig, report: EvaluationReport, results: pd.DataFrame, plots: list[str]) -> str:
    """summary.md: what was compared, the tables, the plots, and the files that failed or were unpaired."""
    sources = [f"- {name}: `{uri}`" for name, uri in cfg.systems.items()]
    sources += [f"- {name}: baseline, run here on the noisy files" for name in cfg.baselines]
    sources += [f"- {role}: `{uri}`" for role, uri in (("noisy", cfg.noisy), ("clean", cfg.clean)) if uri]
    columns = ", ".join(f"`{column}`" for column in cfg.columns)
    lower = ", ".join(column.upper() for column in cfg.columns if column in LOWER_IS_BETTER)
    better = "Higher is better for every metric."
    if lower:
        better = f"Lower is better for {lower}, higher for every other metric."
    systems = len(cfg.system_names)
    lines = [
        "# Evaluation summary",
        "",
        *sources,
        "",
        (f"{report.scored} files scored{f' over {systems} systems' if systems > 1 else ''}, "
         f"{len(report.errors)} failed, {len(report.unpaired)} unpaired. Metrics: {columns}."),
    ]
    if cfg.asr:
        lines += ["", _asr_note(cfg, results)]
    lines += [
        "",
        report.table,
        (f"Mean with its {CONFIDENCE:.0%} Student-t confidence interval, and median, over the files; "
         "Δ is the per-file difference system - noisy (paired t-interval). " + better),
        "",
    ]
    lines += [f"![{plot}]({plot})" for plot in plots]
    for title, entries in (
        ("Failed files", [f"{key} ({system}): {reason}" for (key, system), reason in report.errors.items()]),
        ("Unpaired files", [f"{u.uri} ({u.role}): {u.reason}" for u in report.unpaired]),
    ):
        if entries:
            lines += ["", f"## {title}", ""]
            lines += [f"- {entry}" for entry in entries[:_LISTED_IN_SUMMARY]]
            if len(entries) > _LISTED_IN_SUMMARY:
                lines.append(f"- ... and {len(entries) - _LISTED_IN_SUMMARY} more in {RESULTS_CSV} and {UNPAIRED_CSV}")
    return "\n".join(lines) + "\n"


def _asr_note(cfg: EvaluationConfig, results: pd.DataFrame) -> str:
    """Which recogniser made the transcripts, and where each file's reference text came from."""
    by_key = results.drop_duplicates("key")
    sources = by_key["reference_source"] if "reference_source" in by_key else pd.Series(dtype=object)
    given, from_clean = ((sources == source).sum() for source in REFERENCE_SOURCES)
    missing = len(by_key) - given - from_clean
    return (f"Word error rates from the recogniser `{cfg.asr}`, on transcripts normalised to lower case without "
            f"punctuation. Reference texts: {given} given, {from_clean} from the clean speech (whose WER is "
            f"then 0), {missing} missing.")


def _examples(items: list[EvaluationItem], scored: pd.DataFrame, count: int) -> list[EvaluationItem]:
    """The first `count` items in key order that have a scored row."""
    keys = set(scored["key"].drop_duplicates().head(count))
    return [item for item in items if item.key in keys]
