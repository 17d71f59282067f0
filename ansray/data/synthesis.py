"""Synthesis of a DNS-style training set on Ray Data: planning, per-mixture generation, resume.

`plan_synthesis` lists and probes the sources once; `synthesize_mixture` makes mixture N from the
seed, N and those sources alone; `run_synthesis` runs groups of mixture indices through a Ray Data
actor pool, writes the chosen layout (see layouts.py) and streams the JSONL manifests.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import ray

from ansray.data.layouts import (
    LAYOUTS,
    SHARD_ENCODINGS,
    Mixture,
    dns_done,
    manifest_line,
    read_dns_row,
    read_shard_rows,
    shard_key,
    shards_done,
    write_dns_mixture,
    write_shard,
)
from ansray.data.mix import ClipBuildError, MixConfig, build_clip, draw_reverb, mix, mixture_rng
from ansray.data.rir import DNS_T60_RANGE
from ansray.data.sources import SourceTable, probe_rirs, probe_sources, read_rir
from ansray.io import AudioDecodeError, exists, join_uri, read_bytes, write_bytes_atomic

log = logging.getLogger(__name__)

SPLITS = ("train", "valid")
DNS_GROUP = 8  # mixtures per work item in the dns layout: small, so that work spreads evenly
CONFIG_NAME = "synthesis.json"
SUMMARY_NAME = "summary.json"
FLAC_RATIO = 0.6  # FLAC size of 16-bit speech-plus-noise relative to raw, to size shards


class ResumeMismatchError(ValueError):
    """The output holds a set made with other arguments or other sources; resuming would mix them."""


@dataclass(frozen=True)
class SynthesisConfig:
    """What to generate. Everything here decides the output bytes; how it runs (workers, address,
    credentials) is passed to `run_synthesis` separately.

    Exactly one of `count` (mixtures) and `hours` is set. `shard_rows` overrides `shard_mb`.
    """

    clean: tuple[str, ...]
    noise: tuple[str, ...]
    output: str
    rir: tuple[str, ...] = ()
    count: int | None = None
    hours: float | None = None
    seed: int = 0
    mix: MixConfig = field(default_factory=MixConfig)
    layout: str = "dns"
    valid_fraction: float = 0.0
    rir_t60_range: tuple[float, float] | None = DNS_T60_RANGE
    shard_encoding: str = "flac"
    shard_mb: float = 256.0
    shard_rows: int | None = None

    def __post_init__(self):
        if (self.count is None) == (self.hours is None):
            raise ValueError("give exactly one of count and hours")
        if self.mixture_count < 1:
            raise ValueError(f"nothing to generate: count={self.count}, hours={self.hours}")
        if not self.clean or not self.noise:
            raise ValueError("at least one clean and one noise input are needed")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.shard_encoding not in SHARD_ENCODINGS:
            raise ValueError(f"shard_encoding must be one of {SHARD_ENCODINGS}, got {self.shard_encoding!r}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.mix.percent_for_adding_reverb > 0 and not self.rir:
            raise ValueError("a reverb fraction above 0 needs RIR inputs")

    @property
    def mixture_count(self) -> int:
        if self.count is not None:
            return self.count
        return math.ceil(self.hours * 3600 / self.mix.audio_length)

    @property
    def rows_per_shard(self) -> int:
        if self.shard_rows is not None:
            return self.shard_rows
        bytes_per_mixture = 2 * self.mix.clip_frames * 2 * (FLAC_RATIO if self.shard_encoding == "flac" else 1.0)
        return max(1, int(self.shard_mb * 2**20 / bytes_per_mixture))

    def splits(self) -> tuple[str, ...]:
        return SPLITS if self.valid_fraction > 0 else SPLITS[:1]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def split_of(index: int, valid_fraction: float) -> str:
    """The split of mixture `index`: of any first N mixtures, floor(N · fraction), spread evenly, are
    "valid", so the split of a mixture never depends on how many are made."""
    return "valid" if math.floor((index + 1) * valid_fraction) > math.floor(index * valid_fraction) else "train"


@dataclass(frozen=True)
class WorkGroup:
    """Mixtures handled together: a dns batch, or the mixtures of one shard (`key`)."""

    indices: tuple[int, ...]
    key: str | None = None


@dataclass(frozen=True)
class SynthesisPlan:
    """Everything a worker needs, listed once by the driver and broadcast."""

    config: SynthesisConfig
    clean: SourceTable
    noise: SourceTable
    rirs: SourceTable
    groups: tuple[WorkGroup, ...]
    bad_sources: dict[str, str]

    def digest(self) -> dict:
        return {"clean": self.clean.digest(), "noise": self.noise.digest(), "rir": self.rirs.digest()}


def plan_synthesis(cfg: SynthesisConfig, storage_options: dict | None = None) -> SynthesisPlan:
    """Lists and probes the sources, and groups the mixture indices into work items."""
    rate = cfg.mix.sample_rate
    clean, bad_clean = probe_sources(cfg.clean, rate, storage_options)
    noise, bad_noise = probe_sources(cfg.noise, rate, storage_options)
    rirs, bad_rirs = SourceTable((), rate), {}
    if cfg.rir:
        rirs, bad_rirs = probe_rirs(cfg.rir, rate, cfg.rir_t60_range, storage_options)
    for kind, table in (("clean", clean), ("noise", noise)):
        if not len(table):
            raise ValueError(f"no usable {kind} source in {getattr(cfg, kind)}")
    if cfg.mix.percent_for_adding_reverb > 0 and not len(rirs):
        raise ValueError(f"no usable RIR in {cfg.rir} (T60 range {cfg.rir_t60_range})")
    log.info("sources: %d clean, %d noise, %d RIRs; %d bad", len(clean), len(noise), len(rirs),
             len(bad_clean) + len(bad_noise) + len(bad_rirs))
    return SynthesisPlan(cfg, clean, noise, rirs, _groups(cfg), {**bad_clean, **bad_noise, **bad_rirs})


def _groups(cfg: SynthesisConfig) -> tuple[WorkGroup, ...]:
    count = cfg.mixture_count
    if cfg.layout == "dns":
        return tuple(WorkGroup(tuple(range(start, min(start + DNS_GROUP, count))))
                     for start in range(0, count, DNS_GROUP))
    groups = []
    for split in cfg.splits():
        indices = [i for i in range(count) if split_of(i, cfg.valid_fraction) == split]
        rows = cfg.rows_per_shard
        groups.extend(WorkGroup(tuple(indices[start : start + rows]), shard_key(split, number))
                      for number, start in enumerate(range(0, len(indices), rows)))
    return tuple(groups)


# ---------------------------------------------------------------------------------------------
# One mixture


@dataclass
class MixtureOutcome:
    """What making one mixture gave: the mixture, or the reason it failed; and the source pieces
    skipped on the way as (uri, reason)."""

    fileid: int
    mixture: Mixture | None
    error: str | None
    skipped: list[tuple[str, str]]


def synthesize_mixture(plan: SynthesisPlan, index: int, storage_options: dict | None = None) -> MixtureOutcome:
    """Makes mixture `index` from the seed, the index and the plan's sources alone.

    The clean clip, the noise clip, the reverberation choice and the mixing draws come, in that
    order, from `mixture_rng(seed, index)`. Unreadable source files are skipped like silent ones.
    """
    cfg = plan.config
    rng = mixture_rng(cfg.seed, index)
    skipped: list[tuple[str, str]] = []
    clips = {}
    try:
        for kind, table, threshold in (("clean", plan.clean, cfg.mix.clean_activity_threshold),
                                       ("noise", plan.noise, cfg.mix.noise_activity_threshold)):
            clip = build_clip(
                table.frames, lambda i, start, frames, t=table: t.read(i, start, frames, storage_options),
                rng, cfg.mix, activity_threshold=threshold, unreadable=(AudioDecodeError,), kind=kind,
            )
            clips[kind] = clip
            skipped.extend((table.sources[s].uri, reason) for s, reason in clip.skipped)
    except ClipBuildError as error:
        skipped.extend((table.sources[s].uri, reason) for s, reason in error.skipped)
        return MixtureOutcome(index, None, str(error), skipped)

    rir_index = draw_reverb(rng, cfg.mix, len(plan.rirs))
    rir = rir_uri = None
    if rir_index is not None:
        rir_uri = plan.rirs.sources[rir_index].uri
        try:
            rir = read_rir(plan.rirs.sources[rir_index], cfg.mix.sample_rate, storage_options)
        except AudioDecodeError as error:
            skipped.append((rir_uri, f"unreadable: {error}"))
            rir_uri = None
    noisy, clean, noise, meta = mix(clips["clean"].audio, clips["noise"].audio, rng, cfg.mix, rir)
    rate = cfg.mix.sample_rate
    record = {
        "fileid": index,
        "split": split_of(index, cfg.valid_fraction),
        "duration": len(noisy) / rate,
        "sample_rate": rate,
        "seed": cfg.seed,
        **dataclasses.asdict(meta),
        "rir": rir_uri,
        "clean_sources": _pieces(plan.clean, clips["clean"].pieces, rate),
        "noise_sources": _pieces(plan.noise, clips["noise"].pieces, rate),
    }
    return MixtureOutcome(index, Mixture(index, noisy, clean, noise, record), None, skipped)


def _pieces(table: SourceTable, pieces, rate: int) -> list[dict]:
    return [{"uri": table.sources[p.source].uri, "offset": p.start / rate, "duration": p.frames / rate}
            for p in pieces]


# ---------------------------------------------------------------------------------------------
# Work groups on Ray


class GroupWriter:
    """Ray Data callable class: makes and writes the mixtures of each work group in a batch of
    group numbers. The plan and the done set arrive once per actor."""

    def __init__(self, shared: list, storage_options: dict | None):
        # `shared` holds object refs to the plan and the done set, put once by the driver.
        self.plan: SynthesisPlan
        self.done: set
        self.plan, self.done = ray.get(shared)
        self.storage_options = storage_options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        results = []
        for group in batch["id"]:
            results.extend(write_group(self.plan, self.plan.groups[int(group)], self.done, self.storage_options))
        return {key: [result[key] for result in results] for key in ("status", "row", "skipped")}


def write_group(plan: SynthesisPlan, group: WorkGroup, done: set, storage_options: dict | None) -> list[dict]:
    """Makes and writes one group, or reads back its rows if it is done. One result per mixture:
    status ("written", "resumed" or "failed"), row (the manifest row as JSON, or the failure) and
    skipped (JSON list of [uri, reason])."""
    cfg = plan.config
    if cfg.layout == "dns":
        results = []
        for index in group.indices:
            split = split_of(index, cfg.valid_fraction)
            if index in done:
                results.append(_result("resumed", read_dns_row(cfg.output, split, index, storage_options)))
                continue
            outcome = synthesize_mixture(plan, index, storage_options)
            if outcome.mixture is None:
                results.append(_failure(outcome))
            else:
                results.append(_result("written", write_dns_mixture(cfg.output, outcome.mixture, storage_options),
                                       outcome.skipped))
        return results

    if group.key in done:
        return [_result("resumed", row) for row in read_shard_rows(cfg.output, group.key, storage_options)]
    outcomes: list[MixtureOutcome] = []

    def mixtures():
        for index in group.indices:
            outcome = synthesize_mixture(plan, index, storage_options)
            outcomes.append(outcome)
            if outcome.error is None:
                yield outcome.mixture
                outcome.mixture = None  # encoded into the shard: its signals can go

    rows = iter(write_shard(cfg.output, group.key, mixtures(), cfg.shard_encoding, storage_options))
    return [_failure(o) if o.error else _result("written", next(rows), o.skipped) for o in outcomes]


def _result(status: str, row: dict, skipped: list[tuple[str, str]] = ()) -> dict:
    return {"status": status, "row": json.dumps(row, sort_keys=True), "skipped": json.dumps(list(skipped))}


def _failure(outcome: MixtureOutcome) -> dict:
    return _result("failed", {"fileid": outcome.fileid, "error": outcome.error}, outcome.skipped)


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class SynthesisSummary:
    requested: int
    written: int = 0
    resumed: int = 0
    failed: int = 0
    hours: float = 0.0
    seconds: float = 0.0
    bad_sources: dict[str, str] = field(default_factory=dict)
    skipped_pieces: dict[str, int] = field(default_factory=dict)
    manifests: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_synthesis(
    cfg: SynthesisConfig,
    *,
    workers: int | None = None,
    storage_options: dict | None = None,
) -> SynthesisSummary:
    """Generates the set described by `cfg` on the connected Ray cluster (ray.init first).

    `workers`: size of the actor pool (default: the cluster's CPUs). Outputs do not depend on it.
    Mixtures already written by an earlier run with the same config and sources are kept.
    """
    started = time.monotonic()
    plan = plan_synthesis(cfg, storage_options)
    _claim_output(plan, storage_options)
    splits = cfg.splits()
    if cfg.layout == "dns":
        done = dns_done(cfg.output, splits, storage_options)
    else:
        done = shards_done(cfg.output, splits, storage_options)
    workers = min(workers or max(1, int(ray.cluster_resources().get("CPU", 1))), len(plan.groups))
    log.info("%d mixtures in %d work groups (%d done before) on %d workers",
             cfg.mixture_count, len(plan.groups), len(done), workers)

    context = ray.data.DataContext.get_current()
    preserve_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # manifests in index order, whatever the pool size
    try:
        # from_items builds its blocks in the driver: a read task would wait for a CPU held by the pool.
        dataset = ray.data.from_items([{"id": g} for g in range(len(plan.groups))],
                                      override_num_blocks=min(len(plan.groups), 8 * workers))
        dataset = dataset.map_batches(
            GroupWriter,
            fn_constructor_args=([ray.put(plan), ray.put(done)], storage_options),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        summary = _collect(dataset.iter_rows(), plan, storage_options)
    finally:
        context.execution_options.preserve_order = preserve_order
    summary.seconds = time.monotonic() - started
    write_bytes_atomic(join_uri(cfg.output, SUMMARY_NAME),
                       json.dumps(summary.to_dict(), indent=2, sort_keys=True).encode(), storage_options)
    return summary


def _collect(results, plan: SynthesisPlan, storage_options: dict | None) -> SynthesisSummary:
    """Streams results into per-split JSONL files on local disk, uploaded at the end."""
    cfg = plan.config
    summary = SynthesisSummary(requested=cfg.mixture_count, bad_sources=dict(plan.bad_sources))
    skipped = Counter()
    with tempfile.TemporaryDirectory(prefix="ansray-manifest-") as folder:
        files = {split: open(os.path.join(folder, f"{split}.jsonl"), "wb") for split in cfg.splits()}
        try:
            for result in results:
                row = json.loads(result["row"])
                for uri, reason in json.loads(result["skipped"]):
                    kind = reason.split(":")[0]
                    skipped[kind] += 1
                    if kind == "unreadable" and uri not in summary.bad_sources:
                        log.warning("bad source skipped: %s", reason)
                        summary.bad_sources[uri] = reason.removeprefix("unreadable: ").removeprefix(f"{uri}: ")
                if result["status"] == "failed":
                    log.warning("mixture %d failed: %s", row["fileid"], row["error"])
                    summary.failed += 1
                    continue
                if result["status"] == "written":
                    summary.written += 1
                else:
                    summary.resumed += 1
                summary.hours += row["duration"] / 3600
                files[row["split"]].write(manifest_line(row))
        finally:
            for file in files.values():
                file.close()
        for split in files:
            uri = join_uri(cfg.output, f"{split}.jsonl")
            write_bytes_atomic(uri, _chunks(os.path.join(folder, f"{split}.jsonl")), storage_options)
            summary.manifests[split] = uri
    summary.skipped_pieces = dict(sorted(skipped.items()))
    return summary


def _chunks(path: str, size: int = 2**20):
    with open(path, "rb") as file:
        while chunk := file.read(size):
            yield chunk


def _claim_output(plan: SynthesisPlan, storage_options: dict | None) -> None:
    """Records the config and source fingerprints in the output, or checks that they match the
    ones recorded by an earlier run, so that a resumed run cannot mix two different sets."""
    uri = join_uri(plan.config.output, CONFIG_NAME)
    # The output itself is left out, so that a set copied elsewhere can be resumed there.
    claim = {"config": {**plan.config.to_dict(), "output": None}, "sources": plan.digest()}
    if exists(uri, storage_options):
        recorded = json.loads(read_bytes(uri, storage_options))
        for part in ("config", "sources"):
            if recorded.get(part) != claim[part]:
                raise ResumeMismatchError(
                    f"{plan.config.output} holds a set made with a different {part}; "
                    f"use a new output or remove it (recorded {part}: {recorded.get(part)})"
                )
        return
    write_bytes_atomic(uri, json.dumps(claim, indent=2, sort_keys=True).encode(), storage_options)
