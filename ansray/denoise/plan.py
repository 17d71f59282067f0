"""What a denoise job will do, decided on the driver before any task runs.

Every location is made canonical here (local paths absolute), the inputs are listed once, each input's
output is named, and everything that would lose data is refused before any work: an output that is or
holds an input, outputs of two inputs that would collide, keys that climb out of the output root.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from ansray.denoise.config import DenoiseConfig
from ansray.denoise.manifest import ManifestRow
from ansray.denoise.quality import has_quality
from ansray.io import AudioRef, PathEscapeError, exists, join_uri, list_audio, output_uri
from ansray.io.errors import STORAGE_ERRORS, StorageError, describe
from ansray.io.storage import storage_options_for
from ansray.io.uris import canonical, contains, is_local, is_relative_local, literal_prefix, on_driver_node

log = logging.getLogger(__name__)

MANIFEST_KEY = "_ansray/manifest.jsonl"
STAGING_KEY = "_ansray/parts"


class PathSafetyError(ValueError):
    """A job whose paths would lose data or go astray; refused before any work."""


@dataclass(frozen=True)
class Locations:
    """The job's locations in canonical form, and where its file work may run."""

    inputs: tuple[str, ...]
    output: str
    manifest: str
    model: str
    storage_options: dict | None
    on_driver_node: bool  # some location is `local://`: read and write files on the driver's node only

    @property
    def staging(self) -> str:
        """Where the pieces of long files wait to be joined."""
        return join_uri(self.output, STAGING_KEY)

    def local_roots(self) -> list[str]:
        """The local folders and files every node doing file work must see."""
        return [uri for uri in (*[literal_prefix(u) for u in self.inputs], self.output) if is_local(uri)]


@dataclass(frozen=True)
class FileTask:
    """One input to denoise, with the output it will be written to."""

    file_id: int
    ref: AudioRef
    output: str


@dataclass
class JobPlan:
    locations: Locations
    todo: list[FileTask]
    resumed: list[AudioRef]
    refused: list[ManifestRow]  # error rows decided at plan time, before any work
    listed: int


def resolve_locations(config: DenoiseConfig, unsafe_relative: str | None = None) -> Locations:
    """Canonical locations; refuses relative local paths when `unsafe_relative` says why they would go astray."""
    named = [*config.inputs, config.output, config.model] + ([config.manifest] if config.manifest else [])
    if unsafe_relative:
        # Inputs and the model would be read from the uploaded copy, which holds them; outputs would be lost.
        relative = [uri for uri in (config.output, config.manifest) if uri and is_relative_local(uri)]
        if relative:
            raise PathSafetyError(f"relative output path {relative[0]!r}: {unsafe_relative}; give an absolute "
                                  "path or a URI")
    if config.suffix is not None and (not config.suffix or any(c in config.suffix for c in "/\\\x00")
                                      or ".." in config.suffix):
        raise PathSafetyError(f"--suffix {config.suffix!r} must be a plain name part: no '/', '\\\\' or '..'")
    inputs = tuple(canonical(uri) for uri in config.inputs)
    output = canonical(config.output)
    manifest = canonical(config.manifest) if config.manifest else join_uri(output, MANIFEST_KEY)
    for uri, name in zip(inputs, config.inputs):
        if contains(output, literal_prefix(uri)):
            what = "is" if uri == output else "holds"
            raise PathSafetyError(f"output {config.output!r} {what} input {name!r}: outputs would overwrite or "
                                  "mix with the originals; choose an output outside every input")
    storage_options = storage_options_for([*inputs, output, manifest, config.model], config.storage_options)
    model = canonical(config.model) if is_local(config.model) else config.model
    return Locations(inputs, output, manifest, model, storage_options, any(on_driver_node(u) for u in named))


def plan_job(config: DenoiseConfig, locations: Locations, previous: dict[str, dict]) -> JobPlan:
    """Lists the inputs and decides each one's fate: to do, resumed, or refused (with its reason)."""
    refs = list_inputs(locations)
    if config.limit is not None:
        refs = refs[: config.limit]
    extension = None if config.output_format == "same" else "." + config.output_format
    tasks, refused, resumed = [], [], []
    for ref in refs:
        try:
            tasks.append(FileTask(len(tasks), ref, output_uri(ref, locations.output, config.suffix, extension)))
        except PathEscapeError as error:
            if not config.overwrite and _found_unusable(previous.get(ref.uri), ref):
                resumed.append(ref)
            else:
                reason = f"{ref.uri}: output name refused: {error}"
                refused.append(ManifestRow.failed(ref.uri, ref.stamp, reason, "input"))
    tasks, collided = _without_collisions(tasks)
    refused += collided
    todo = []
    for task in tasks:
        done = not config.overwrite and _is_done(previous.get(task.ref.uri), task, config, locations)
        (resumed if done else todo).append(task.ref if done else task)
    todo = [FileTask(i, task.ref, task.output) for i, task in enumerate(todo)]
    return JobPlan(locations, todo, resumed, refused, len(refs))


def list_inputs(locations: Locations) -> list[AudioRef]:
    """The inputs, leaving out anything inside the output tree: an output below an input root, or an
    earlier run's outputs named in a manifest, are never read as inputs."""
    try:
        refs = list_audio(list(locations.inputs), storage_options=locations.storage_options)
    except STORAGE_ERRORS as error:
        if isinstance(error, (FileNotFoundError, StorageError)):
            raise
        raise StorageError(", ".join(locations.inputs), f"cannot list inputs: {describe(error)}") from None
    kept = [ref for ref in refs if not contains(locations.output, ref.uri)]
    if len(kept) < len(refs):
        log.info("%d files inside the output %s are not taken as inputs", len(refs) - len(kept), locations.output)
    return kept


def _without_collisions(tasks: list[FileTask]) -> tuple[list[FileTask], list[ManifestRow]]:
    """Tasks whose outputs are unique, and an error row for each input whose output another input shares."""
    by_output = defaultdict(list)
    for task in tasks:
        by_output[task.output].append(task)
    kept, refused = [], []
    for task in tasks:
        sharing = by_output[task.output]
        if len(sharing) == 1:
            kept.append(task)
            continue
        others = ", ".join(other.ref.uri for other in sharing if other is not task)
        reason = (f"{task.ref.uri}: its output {task.output} would also be written for {others}; "
                  "rename one, or use --output-format same or --suffix")
        refused.append(ManifestRow.failed(task.ref.uri, task.ref.stamp, reason, "plan"))
    return kept, refused


def _is_done(row: dict | None, task: FileTask, config: DenoiseConfig, locations: Locations) -> bool:
    """An input is resumed when its stamp is unchanged and either its output is recorded ok (at the same
    name, with the requested quality scores) and still exists, or the input itself was found unusable (a
    decode error would only repeat). Inputs that failed for other reasons are retried."""
    if _found_unusable(row, task.ref):
        return True
    return (row is not None and row.get("status") == "ok" and row.get("input_stamp") == task.ref.stamp
            and row.get("audio_filepath") == task.output and has_quality(row, config.quality)
            and exists(task.output, locations.storage_options))


def _found_unusable(row: dict | None, ref: AudioRef) -> bool:
    """Whether an earlier run found this very input (same stamp) unusable in itself."""
    return (row is not None and row.get("input_stamp") == ref.stamp and row.get("status") == "error"
            and row.get("error_kind") == "input")
