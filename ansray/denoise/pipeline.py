"""The denoise job's Ray Data pipeline.

    list_audio -> resume filter -> from_items(files)
      -> flat_map(segment_rows)            CPU tasks: header, level, segments at 16 kHz, per channel
      -> map_batches(SegmentEnhancer)      actor pool of FRCRN replicas (GPU or CPU)
      -> driver: gather a file's segments -> finish_file task (stitch, resample, encode, write,
                                            optional DNSMOS of input and output)
      -> manifest row

Writes are atomic and the manifest is appended as files finish, so a killed job loses only what was
in flight, and a rerun completes the rest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ansray.enhance import SegmentOptions, enhance_batch, inference_model
from ansray.io import AudioDecodeError, AudioRef, audio_info, exists, join_uri, list_audio
from ansray.model import load_model, weights_digest
from ansray.denoise.files import FilePlan, SourceReader, finish_file, plan_file, read_segments
from ansray.denoise.manifest import ManifestWriter, latest_rows, read_manifest_rows
from ansray.denoise.quality import check_quality, has_quality

log = logging.getLogger("ansray.denoise")

MANIFEST_KEY = "_ansray/manifest.jsonl"
PROGRESS_SECONDS = 10.0
# Errors that describe the input, not the machine: they become `error` rows, never a crashed job.
INPUT_ERRORS = (AudioDecodeError, ValueError, OSError, RuntimeError)


@dataclass(frozen=True)
class DenoiseConfig:
    inputs: tuple[str, ...]
    output: str
    model: str
    manifest: str | None = None
    actors: tuple[int, int] = (1, 1)
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    segments: SegmentOptions = field(default_factory=SegmentOptions)
    dtype: str = "float32"
    output_format: str = "same"
    suffix: str | None = None
    overwrite: bool = False
    mixdown: bool = False
    limit: int | None = None
    storage_options: dict | None = None
    address: str | None = None
    quality: tuple[str, ...] = ()  # no-reference scores of input and output in the manifest: "dnsmos"

    @property
    def manifest_uri(self) -> str:
        return self.manifest or join_uri(self.output, MANIFEST_KEY)


@dataclass
class DenoiseSummary:
    ok: int = 0
    error: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0  # listing, model digest and Ray start-up, before the first file is read
    errors: list[str] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio processed per wall-clock second (x real time)."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def line(self) -> str:
        return (
            f"files ok {self.ok}, error {self.error}, skipped {self.skipped}; "
            f"{self.audio_seconds / 3600:.3f} h of audio in {self.wall_seconds:.1f} s "
            f"({self.realtime_factor:.1f}x real time)"
        )


def segment_rows(item: dict, *, output_root: str, options: SegmentOptions, output_format: str,
                 suffix: str | None, mixdown: bool, storage_options: dict | None):
    """One row per (segment, channel) of one file; an input error yields a single error row."""
    ref = AudioRef(**item["ref"])
    file_id = item["file_id"]
    try:
        info = audio_info(ref.uri, storage_options)
        reader = SourceReader(ref, info, storage_options)
        plan = plan_file(ref, info, output_root, options, requested_format=output_format, suffix=suffix,
                         mixdown=mixdown, reader=reader)
        plan_text = json.dumps(plan.to_dict())
        for index in range(plan.segments.count):
            segments = read_segments(plan, index, reader=reader)
            for channel, audio in enumerate(segments):
                yield {"file_id": file_id, "segment": index, "channel": channel, "audio": audio,
                       "plan": plan_text, "error": "", "error_kind": ""}
    except INPUT_ERRORS as error:
        decode_error = isinstance(error, AudioDecodeError)
        reason = str(error) if decode_error else f"{ref.uri}: {error}"
        length = options.plan(0).segment
        yield {"file_id": file_id, "segment": -1, "channel": -1, "audio": np.zeros(length, np.float32),
               "plan": "", "error": reason, "error_kind": "input" if decode_error else "system"}


class SegmentEnhancer:
    """A Ray Data actor holding one FRCRN replica; `__call__` enhances a batch of equal-length segments."""

    def __init__(self, model: str, dtype: str = "float32", threads: int = 1, storage_options: dict | None = None):
        import torch

        use_gpu = torch.cuda.is_available()
        if not use_gpu:
            torch.set_num_threads(max(1, threads))
        device = "cuda" if use_gpu else "cpu"
        self.dtype = dtype
        self.model = inference_model(load_model(model, device=device, storage_options=storage_options))

    def __call__(self, batch: dict) -> dict:
        # Rows of one length run as one batch; lengths differ only where segments are fitted to files.
        audio = list(batch.pop("audio"))
        enhanced = [np.zeros_like(row) for row in audio]
        by_length = {}
        for i, row in enumerate(audio):
            if batch["segment"][i] >= 0:
                by_length.setdefault(len(row), []).append(i)
        for rows in by_length.values():
            for i, out in zip(rows, enhance_batch(self.model, np.stack([audio[i] for i in rows]), self.dtype)):
                enhanced[i] = out
        batch["enhanced"] = _column(enhanced)
        return batch


def _column(rows: list[np.ndarray]) -> np.ndarray:
    """Rows as one [rows, length] array, or an object array of them when their lengths differ."""
    if len({len(row) for row in rows}) <= 1:
        return np.stack(rows)
    column = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        column[i] = row
    return column


@dataclass
class _FileState:
    plan: FilePlan
    enhanced: np.ndarray  # [count, channels, segment]
    missing: set
    started: float


def _is_under(uri: str, root: str) -> bool:
    return uri.startswith(root.rstrip("/") + "/")


def files_to_process(refs: list[AudioRef], previous: dict[str, dict], config: DenoiseConfig) -> tuple[list, list]:
    """(refs to process, refs resumed).

    An input is resumed when its stamp is unchanged and either its output is recorded ok (with the
    requested quality scores) and still exists, or the input itself was found unusable (a decode
    error would only repeat). Inputs that failed for other reasons (storage, workers) are retried.
    """
    todo, resumed = [], []
    for ref in refs:
        row = previous.get(ref.uri)
        done = not config.overwrite and row is not None and row.get("input_stamp") == ref.stamp and (
            (row.get("status") == "ok" and has_quality(row, config.quality)
             and exists(row["audio_filepath"], config.storage_options))
            or (row.get("status") == "error" and row.get("error_kind") == "input")
        )
        (resumed if done else todo).append(ref)
    return todo, resumed


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)


def check_cpus_left_for_files(config: DenoiseConfig) -> None:
    """Fails when the actors would take every CPU of a local Ray: the tasks that read, stitch and write
    files need one, and without it the job waits forever. A remote cluster may still add nodes, so
    there it only warns."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    actor_cpus = config.actors[1] * config.cpus_per_actor
    if cpus - actor_cpus >= 1:
        return
    message = (f"the Ray cluster has {cpus:g} CPUs and {config.actors[1]} actors of {config.cpus_per_actor:g} CPUs "
               f"take {actor_cpus:g}: at least 1 must be left to read and write files; lower --actors or "
               "--cpus-per-actor")
    if config.address or os.environ.get("RAY_ADDRESS"):
        log.warning("%s, or add nodes: the job waits until the cluster has them", message)
    else:
        raise ValueError(message)


def run_denoise(config: DenoiseConfig, enhancer_cls=SegmentEnhancer) -> DenoiseSummary:
    started = time.monotonic()
    summary = DenoiseSummary()
    storage_options = config.storage_options
    refs = [r for r in list_audio(list(config.inputs), storage_options=storage_options) if not _is_under(r.uri, config.output)]
    if config.limit is not None:
        refs = refs[: config.limit]
    check_quality(config.quality)  # fail fast, before any work
    model = load_model(config.model, storage_options=storage_options)
    model_id = {"source": config.model, "weights_sha256": weights_digest(model)}
    del model

    previous_rows = read_manifest_rows(config.manifest_uri, storage_options)
    todo, resumed = files_to_process(refs, latest_rows(previous_rows), config)
    summary.skipped = len(resumed)
    manifest = ManifestWriter(config.manifest_uri, previous_rows, storage_options)
    log.info("%d inputs: %d to process, %d already done", len(refs), len(todo), len(resumed))

    if todo:
        _init_ray(config.address)
        check_cpus_left_for_files(config)
        summary.startup_seconds = time.monotonic() - started
        _run_pipeline(config, todo, enhancer_cls, model_id, manifest, summary, started)
    manifest.compact()
    summary.wall_seconds = time.monotonic() - started
    return summary


def _run_pipeline(config, todo, enhancer_cls, model_id, manifest, summary, started):
    import ray

    storage_options = config.storage_options
    items = [{"file_id": i, "ref": asdict(ref)} for i, ref in enumerate(todo)]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.flat_map(
        segment_rows,
        fn_kwargs=dict(output_root=config.output, options=config.segments, output_format=config.output_format,
                       suffix=config.suffix, mixdown=config.mixdown, storage_options=storage_options),
    )
    low, high = config.actors
    dataset = dataset.map_batches(
        enhancer_cls,
        fn_constructor_kwargs=dict(model=config.model, dtype=config.dtype,
                                   threads=int(max(1, config.cpus_per_actor)), storage_options=storage_options),
        batch_size=config.segments.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high),
        num_cpus=config.cpus_per_actor,
        num_gpus=config.gpus_per_actor or None,
    )
    finish = ray.remote(num_cpus=1)(finish_file)
    states: dict[int, _FileState] = {}
    finished: set[int] = set()
    pending = {}
    total = len(todo)
    last_progress = time.monotonic()

    def record(row: dict, file_id: int) -> None:
        ref = todo[file_id]
        row = {"input_filepath": ref.uri, "input_stamp": ref.stamp, "model": model_id} | row
        manifest.append(row)
        finished.add(file_id)
        if row["status"] == "ok":
            summary.ok += 1
            summary.audio_seconds += row["duration"]
        else:
            summary.error += 1
            summary.errors.append(row["error"])
            log.warning("error: %s", row["error"])

    def collect(block: bool) -> None:
        if not pending:
            return
        done, _ = ray.wait(list(pending), num_returns=1 if block else len(pending), timeout=None if block else 0)
        for ref in done:
            file_id, state = pending.pop(ref)
            try:
                facts = ray.get(ref)
                row = facts | {"sample_rate": state.plan.info.sample_rate, "status": "ok", "error": None, "error_kind": None,
                               "seconds_processing": round(time.monotonic() - state.started, 3)}
            except Exception as error:  # noqa: BLE001 - a failed write is this file's error, not the job's
                cause = getattr(error, "cause", None) or error
                row = _error_row(f"{state.plan.output}: could not write output: {cause}", "system")
            record(row, file_id)

    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["file_id"])):
            file_id = int(batch["file_id"][i])
            if file_id in finished:
                continue
            if batch["error"][i]:
                states.pop(file_id, None)
                record(_error_row(str(batch["error"][i]), str(batch["error_kind"][i])), file_id)
                continue
            state = states.get(file_id)
            if state is None:
                plan = FilePlan.from_dict(json.loads(batch["plan"][i]))
                shape = (plan.segments.count, plan.channels, plan.segments.segment)
                missing = {(j, c) for j in range(shape[0]) for c in range(shape[1])}
                state = states[file_id] = _FileState(plan, np.zeros(shape, np.float32), missing, time.monotonic())
            key = (int(batch["segment"][i]), int(batch["channel"][i]))
            state.enhanced[key] = batch["enhanced"][i]
            state.missing.discard(key)
            if not state.missing:
                del states[file_id]
                pending[finish.remote(state.plan, state.enhanced, storage_options, config.quality)] = (file_id, state)
        while len(pending) > 4:
            collect(block=True)
        collect(block=False)
        if time.monotonic() - last_progress >= PROGRESS_SECONDS:
            last_progress = time.monotonic()
            elapsed = last_progress - started
            log.info("%d/%d files, %.3f h of audio, %.1fx real time", len(finished), total,
                     summary.audio_seconds / 3600, summary.audio_seconds / max(elapsed, 1e-9))
            manifest.flush()
    while pending:
        collect(block=True)
    for file_id, ref in enumerate(todo):
        if file_id not in finished:
            record(_error_row(f"{ref.uri}: no output was produced (segments lost by a failed worker)", "system"), file_id)


def _error_row(reason: str, kind: str) -> dict:
    """`kind` is "input" for an unusable input (skipped on rerun until it changes), else "system"."""
    return {"audio_filepath": None, "duration": None, "sample_rate": None, "channels": None,
            "status": "error", "error": reason, "error_kind": kind, "seconds_processing": None}
