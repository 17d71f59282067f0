"""The denoise job: plan on the driver, then a Ray Data pipeline of bundles, with metadata only coming back.

    plan_job (driver)           canonical locations, inputs listed, outputs named, unsafe paths refused
    read_bundles    (tasks)     header, level, segments at 16 kHz, packed into bundles
    SegmentEnhancer (actors)    FRCRN replicas (GPU or CPU), weights shipped through the object store
    finish_bundles  (tasks)     stitch, resample back, restore level, encode, write (or stage a piece)
    driver                      manifest rows as results arrive; long files joined by `assemble_output` tasks

Enhanced audio flows from the actors to the tasks that write it, never through the driver. Writes are
atomic and the manifest is appended as files finish, so a killed job loses only what was in flight, and
a rerun completes the rest. Files left without an outcome by a failure of the cluster (a lost node) are
run again, up to `ATTEMPTS` times in all.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field

from ansray import cluster
from ansray.attenuation import gain_db, output_gain
from ansray.denoise.bundles import assemble_output, finish_bundles, read_bundles, staging_key
from ansray.denoise.config import DenoiseConfig
from ansray.denoise.enhancer import SegmentEnhancer
from ansray.denoise.files import Finishing
from ansray.denoise.manifest import ManifestRow, ManifestWriteError, ManifestWriter, latest_rows, read_manifest_rows
from ansray.denoise.plan import FileTask, JobPlan, Locations, PathSafetyError, plan_job, resolve_locations
from ansray.denoise.quality import check_quality
from ansray.io import fs_for, join_uri
from ansray.io.errors import STORAGE_ERRORS, StorageError, describe
from ansray.model import load_model, model_weights, weights_digest
from ansray.model.polarity import check_polarity

log = logging.getLogger("ansray.denoise")

PROGRESS_SECONDS = 10.0
# Segments (of one channel each) per bundle: a CPU actor call then runs minutes of audio, and a row
# stays ~20 MB. GPUs get at least two model batches per call.
BUNDLE_SEGMENTS = 32
# Files per read task at most, and bytes of input: Ray Data's costs per task are paid per group, while
# a group stays small enough to spread over the cluster.
GROUP_FILES = 16
GROUP_BYTES = 64 * 2**20
ATTEMPTS = 3


@dataclass
class DenoiseSummary:
    ok: int = 0
    error: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0  # planning, model check and Ray start-up, before the first file is read
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


def run_denoise(config: DenoiseConfig, enhancer_cls=SegmentEnhancer) -> DenoiseSummary:
    started = time.monotonic()
    summary = DenoiseSummary()
    locations = resolve_locations(config, cluster.relative_paths_are_unsafe())
    finishing = config.finishing  # refuses contradictory flags before any work
    check_quality(config.quality)
    model = load_model(locations.model, storage_options=locations.storage_options)
    probe_gain = check_polarity(model, locations.model)
    model_id = {"source": locations.model, "weights_sha256": weights_digest(model), "probe_gain": round(probe_gain, 3)}

    previous_rows = _read_previous_rows(locations)
    plan = plan_job(config, locations, latest_rows(previous_rows))
    summary.skipped = len(plan.resumed)
    manifest = ManifestWriter(locations.manifest, previous_rows, locations.storage_options)
    log.info("%d inputs: %d to process, %d already done, %d refused", plan.listed, len(plan.todo),
             len(plan.resumed), len(plan.refused))
    results = Results(plan, manifest, summary, model_id)
    for row in plan.refused:
        results.record(row)

    if plan.todo:
        cluster.connect(config.address)
        check_cluster(config, locations)
        weights = _put(model_weights(model))
        del model
        summary.startup_seconds = time.monotonic() - started
        for attempt in range(1, ATTEMPTS + 1):
            remaining = [task for task in plan.todo if task.file_id not in results.finished]
            if not remaining:
                break
            if attempt > 1:
                log.warning("attempt %d of %d for %d files left without an outcome", attempt, ATTEMPTS, len(remaining))
            try:
                _run_pipeline(config, finishing, locations, remaining, weights, enhancer_cls, results)
            except ManifestWriteError:
                raise  # nothing more can be recorded: stop, with what was recorded kept
            except Exception as error:  # noqa: BLE001 - a failure of the cluster, not of a file: retried
                log.warning("the pipeline failed (%s); files without an outcome are retried", describe(error))
        for task in plan.todo:
            if task.file_id not in results.finished:
                results.failed(task, f"{task.ref.uri}: no output was produced in {ATTEMPTS} attempts "
                                     "(workers or nodes failed)", "system")
    manifest.compact()
    summary.wall_seconds = time.monotonic() - started
    return summary


def _read_previous_rows(locations: Locations) -> list[dict]:
    """The manifest so far. Storage that cannot be reached stops the job here, before any work."""
    try:
        return read_manifest_rows(locations.manifest, locations.storage_options)
    except STORAGE_ERRORS as error:
        if isinstance(error, StorageError):
            raise
        raise StorageError(locations.manifest, f"cannot read the manifest: {describe(error)}") from None


def _put(value):
    import ray

    return ray.put(value)


def check_cluster(config: DenoiseConfig, locations: Locations) -> None:
    """Refuses a cluster the job would hang or scatter files on, before any work.

    - Actors that take every CPU of a local Ray leave none to read and write files: it would wait
      forever. A remote cluster may still add nodes, so there it only warns.
    - Local paths on several nodes must be one shared filesystem (each node is asked whether it sees
      them), unless `local://` keeps the file work on the driver's node.
    """
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    actor_cpus = config.actors[1] * config.cpus_per_actor
    if cpus - actor_cpus < 1:
        message = (f"the Ray cluster has {cpus:g} CPUs and {config.actors[1]} actors of {config.cpus_per_actor:g} "
                   f"CPUs take {actor_cpus:g}: at least 1 must be left to read and write files; lower --actors "
                   "or --cpus-per-actor")
        if not cluster.is_remote_cluster(config.address):
            raise ValueError(message)
        log.warning("%s, or add nodes: the job waits until the cluster has them", message)
    if locations.on_driver_node:
        node = next(n for n in cluster.alive_nodes() if n["NodeID"] == cluster.driver_node_id())
        if node.get("Resources", {}).get("CPU", 0) < 1:
            raise ValueError("a local:// location pins reading and writing to the driver's node, which has no "
                             "CPU for Ray tasks; run the driver on a node with CPUs, or use shared storage")
        log.info("local:// locations: files are read and written on the driver's node only")
        return
    roots = locations.local_roots()
    nodes = cluster.alive_nodes()
    if not roots or len(nodes) < 2:
        return
    fs, path = fs_for(locations.output, locations.storage_options)
    fs.makedirs(path, exist_ok=True)
    missing = cluster.paths_missing_on_nodes(roots)
    if missing:
        node, paths = next(iter(missing.items()))
        raise PathSafetyError(
            f"{paths[0]} is not visible on node {node} of this {len(nodes)}-node cluster: local paths must be on "
            "a filesystem shared by every node (mounted at the same path); otherwise use object storage "
            "(s3://...), or local:// to read and write on the driver's node only")
    log.info("local paths on a %d-node cluster: assuming a filesystem shared by every node (each node sees %s)",
             len(nodes), ", ".join(roots))


def file_groups(tasks: list[FileTask], parallelism: int) -> list[list[FileTask]]:
    """Groups of files for the read tasks: at most about `GROUP_FILES` files and `GROUP_BYTES` each, and at
    least `parallelism` groups where there are that many files. Dealt largest first, so groups hold alike
    numbers of files and of bytes."""
    total = sum(task.ref.size for task in tasks)
    count = min(len(tasks), max(math.ceil(len(tasks) / GROUP_FILES), math.ceil(total / GROUP_BYTES), parallelism))
    groups = [[] for _ in range(count)]
    for k, task in enumerate(sorted(tasks, key=lambda t: t.ref.size, reverse=True)):
        groups[k % count].append(task)
    return groups


def _run_pipeline(config: DenoiseConfig, finishing: Finishing, locations: Locations, tasks: list[FileTask], weights,
                  enhancer_cls, results: "Results") -> None:
    file_work = cluster.pinned_to_driver_node() if locations.on_driver_node else {}
    dataset = build_dataset(config, finishing, locations, tasks, weights, enhancer_cls, file_work)
    collect_results(dataset, locations, finishing, results, file_work)


def build_dataset(config: DenoiseConfig, finishing: Finishing, locations: Locations, tasks: list[FileTask], weights,
                  enhancer_cls, file_work: dict):
    """read_bundles (CPU tasks) -> `enhancer_cls` (actor pool) -> finish_bundles (CPU tasks), over `tasks`."""
    import ray

    parallelism = int(ray.cluster_resources().get("CPU", 1))
    groups = [{"files": json.dumps([{"file_id": t.file_id, "ref": asdict(t.ref), "output": t.output}
                                    for t in group])}
              for group in file_groups(tasks, parallelism)]
    segments = config.segments
    dataset = ray.data.from_items(groups, override_num_blocks=len(groups))
    dataset = dataset.map_batches(
        read_bundles, batch_size=None, num_cpus=1, **file_work,
        fn_kwargs=dict(options=segments, capacity=max(BUNDLE_SEGMENTS, 2 * segments.batch_size),
                       output_format=config.output_format, mixdown=config.mixdown,
                       storage_options=locations.storage_options),
    )
    low, high = config.actors
    dataset = dataset.map_batches(
        enhancer_cls,
        fn_constructor_kwargs=dict(weights=weights, dtype=config.dtype, threads=int(max(1, config.cpus_per_actor)),
                                   batch_size=segments.batch_size),
        batch_size=1,  # one bundle per call; the actor batches its segments for the model itself
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high),
        num_cpus=config.cpus_per_actor,
        num_gpus=config.gpus_per_actor or None,
    )
    return dataset.map_batches(
        finish_bundles, batch_size=1, num_cpus=1, **file_work,
        fn_kwargs=dict(storage_options=locations.storage_options, finishing=finishing, staging=locations.staging),
    )


def collect_results(dataset, locations: Locations, finishing: Finishing, results: "Results", file_work: dict) -> None:
    """Records each file's outcome as its result row arrives, and joins the pieces of long files."""
    import ray

    assemble = ray.remote(num_cpus=1, **file_work)(assemble_output)
    joining = {}
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["file_id"])):
            task = results.task(int(batch["file_id"][i]))
            result = json.loads(batch["result"][i])
            if task.file_id in results.finished:
                continue
            if "error" in result:
                results.failed(task, result["error"], result["error_kind"], result["seconds"])
                _drop_staged(task, locations)
            elif "part" in result:
                parts = results.add_part(task, int(batch["piece"][i]), int(batch["pieces"][i]), result)
                if parts is not None:
                    joining[assemble.remote(result["plan"], parts, locations.storage_options, finishing)] = task
            else:
                results.succeeded(task, result)
        _collect_joined(joining, results, block=False)
        results.progress()
    while joining:
        _collect_joined(joining, results, block=True)


def _collect_joined(joining: dict, results: "Results", block: bool) -> None:
    import ray

    if not joining:
        return
    done, _ = ray.wait(list(joining), num_returns=1 if block else len(joining), timeout=None if block else 0)
    for ref in done:
        task = joining.pop(ref)
        pieces = results.part_totals(task)
        try:
            facts = ray.get(ref)
        except Exception as error:  # noqa: BLE001 - a failed join is this file's error, not the job's
            cause = getattr(error, "cause", None) or error
            results.failed(task, f"{task.output}: could not write output: {describe(cause)}", "system",
                           pieces["seconds"])
            continue
        results.succeeded(task, facts | pieces)


def _drop_staged(task: FileTask, locations: Locations) -> None:
    """Removes the staged pieces of a file that failed (best effort: a rerun overwrites them anyway)."""
    uri = join_uri(locations.staging, staging_key(task.output))
    try:
        fs, path = fs_for(uri, locations.storage_options)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except STORAGE_ERRORS as error:
        log.warning("%s: could not remove staged pieces: %s", uri, describe(error))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Results:
    """The driver's record of outcomes: manifest rows, the summary, and long files' staged pieces."""

    def __init__(self, plan: JobPlan, manifest: ManifestWriter, summary: DenoiseSummary, model_id: dict):
        self.tasks = {task.file_id: task for task in plan.todo}
        self.manifest, self.summary, self.model_id = manifest, summary, model_id
        self.finished: set[int] = set()
        self.parts: dict[int, dict[int, dict]] = {}
        self.total = len(plan.todo)
        self.started = self.last_progress = time.monotonic()

    def task(self, file_id: int) -> FileTask:
        return self.tasks[file_id]

    def add_part(self, task: FileTask, piece: int, pieces: int, result: dict) -> list[str] | None:
        """Records one staged piece; returns every piece's URI, in order, once all have arrived."""
        parts = self.parts.setdefault(task.file_id, {})
        parts[piece] = result
        return [parts[i]["part"] for i in range(pieces)] if len(parts) == pieces else None

    def part_totals(self, task: FileTask) -> dict:
        """The work seconds and polarity sums of a long file, over its pieces."""
        parts = self.parts.get(task.file_id, {}).values()
        return {key: sum(part.get(key, 0.0) for part in parts) for key in ("seconds", "dot", "energy")}

    def succeeded(self, task: FileTask, facts: dict) -> None:
        gain = output_gain(facts["dot"], facts["energy"])
        scores = (facts.get("scores") or {}) | {"output_gain": None if gain is None else round(gain, 4),
                                                "output_gain_db": _rounded(gain_db(gain))}
        self.record(ManifestRow(
            input_filepath=task.ref.uri, input_stamp=task.ref.stamp, status="ok",
            audio_filepath=facts["audio_filepath"], duration=facts["duration"], sample_rate=facts["sample_rate"],
            channels=facts["channels"], seconds_processing=round(facts.get("seconds", 0.0), 3), model=self.model_id,
            scores=scores,
        ), task.file_id)

    def failed(self, task: FileTask, reason: str, kind: str, seconds: float | None = None) -> None:
        self.record(ManifestRow.failed(task.ref.uri, task.ref.stamp, reason, kind, seconds_processing=seconds,
                                       model=self.model_id), task.file_id)

    def record(self, row: ManifestRow, file_id: int | None = None) -> None:
        self.manifest.append(row)
        if file_id is not None:
            self.finished.add(file_id)
            self.parts.pop(file_id, None)
        if row.status == "ok":
            self.summary.ok += 1
            self.summary.audio_seconds += row.duration
        else:
            self.summary.error += 1
            self.summary.errors.append(row.error)
            log.warning("error: %s", row.error)

    def progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_SECONDS:
            return
        self.last_progress = now
        log.info("%d/%d files, %.3f h of audio, %.1fx real time", len(self.finished), self.total,
                 self.summary.audio_seconds / 3600, self.summary.audio_seconds / max(now - self.started, 1e-9))
        self.manifest.flush()
