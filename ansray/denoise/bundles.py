"""Bundles: the rows of the denoise job's Ray Data pipeline, and the two CPU stages that make and finish them.

A bundle holds the 16 kHz segments (every channel) of several whole short files, or of one piece of a
long file, as one flat float32 array, with a JSON list of its entries. Ray Data's costs per row, per
task and per actor call are then paid per bundle, not per file or per segment, and no row grows with a
file's length. An input that fails is an entry with an error and no samples.

    read_bundles:   files -> plan, level, segments at 16 kHz       (CPU tasks)
    (actors):       segments -> enhanced segments                  (`SegmentEnhancer`)
    finish_bundles: whole files -> stitched, written               (CPU tasks)
                    pieces of long files -> stitched, staged       (joined by `assemble_output`)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ansray.denoise.files import (Finishing, FilePlan, SourceReader, plan_file, read_segments, stitch_segments,
                                  write_output)
from ansray.io import AudioDecodeError, AudioRef, PathEscapeError, audio_info, fs_for, join_uri, read_bytes
from ansray.io.errors import describe
from ansray.io.storage import write_bytes_atomic
from ansray.segments import SegmentOptions, segment_weights


@dataclass
class Entry:
    """One whole file, one piece of a long file, or one failed input, in a bundle."""

    file_id: int
    plan: dict | None = None  # FilePlan.to_dict(); None for a failed input
    first: int = 0  # the file's segment index of this entry's first segment
    count: int = 0  # segments held, each with every channel
    piece: int = 0
    pieces: int = 1
    primed: bool = False  # the first segment repeats the previous piece's last, for the cross-fade only
    error: str | None = None
    error_kind: str | None = None
    seconds: float = 0.0  # work spent on this entry so far, in every stage
    # <enhanced, noisy> and <noisy, noisy> over the samples this entry completes (every channel, at 16 kHz):
    # summed over a file, they give the least-squares gain of its output onto its input.
    dot: float = 0.0
    energy: float = 0.0

    def file_plan(self) -> FilePlan:
        return FilePlan.from_dict(self.plan)

    def samples(self) -> int:
        if self.plan is None:
            return 0
        plan = self.file_plan()
        return self.count * plan.channels * plan.segments.segment


@dataclass
class Bundle:
    entries: list[Entry]
    audio: np.ndarray  # float32, every entry's [count, channels, segment] samples, in order

    @classmethod
    def from_row(cls, audio: np.ndarray, entries: str) -> "Bundle":
        return cls([Entry(**values) for values in json.loads(entries)], np.asarray(audio, dtype=np.float32))

    def segments(self) -> Iterator[tuple[Entry, np.ndarray]]:
        """Each entry with a view of its samples as [count, channels, segment] (empty for an error)."""
        offset = 0
        for entry in self.entries:
            if entry.plan is None:
                yield entry, np.zeros((0, 0, 0), np.float32)
                continue
            plan = entry.file_plan()
            size = entry.samples()
            yield entry, self.audio[offset : offset + size].reshape(entry.count, plan.channels, plan.segments.segment)
            offset += size


def add_polarity_sums(entry: Entry, noisy: np.ndarray, enhanced: np.ndarray) -> None:
    """Adds <enhanced, noisy> and <noisy, noisy> of the entry's segments [count, channels, segment] to it.

    Each segment's samples are weighted by its cross-fade weights, which sum to 1 at every sample, so the
    sums over a file equal those of its stitched output against its input at 16 kHz (without stitching).
    A primed segment belongs to the piece before, and is left out.
    """
    segments = entry.file_plan().segments
    for k in range(1 if entry.primed else 0, entry.count):
        weights = segment_weights(segments, entry.first + k).astype(np.float64)
        entry.dot += float(np.sum(weights * np.sum(enhanced[k] * noisy[k], axis=0, dtype=np.float64)))
        entry.energy += float(np.sum(weights * np.sum(np.square(noisy[k], dtype=np.float64), axis=0)))


def bundles_from_rows(batch: dict) -> list[Bundle]:
    """The bundles in a Ray Data batch (numpy format)."""
    return [Bundle.from_row(batch["audio"][i], batch["entries"][i]) for i in range(len(batch["entries"]))]


def as_batch(bundles: list[Bundle]) -> dict:
    """A Ray Data batch of bundles; `audio` is an object column, since bundles differ in length."""
    audio = np.empty(len(bundles), dtype=object)
    for i, bundle in enumerate(bundles):
        audio[i] = bundle.audio
    return {"audio": audio, "entries": np.array([json.dumps([dataclasses.asdict(e) for e in b.entries])
                                                 for b in bundles])}


class _Packer:
    """Collects entries until the next one would overflow `capacity` segments."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: list[Entry] = []
        self.audio: list[np.ndarray] = []
        self.segments = 0

    def room_for(self, segments: int) -> bool:
        return self.segments + segments <= self.capacity

    def add(self, entry: Entry, audio: np.ndarray | None = None, segments: int = 0) -> None:
        self.entries.append(entry)
        if audio is not None:
            self.audio.append(audio)
        self.segments += segments

    def take(self) -> Iterator[dict]:
        """The collected bundle as a one-row batch (nothing if empty), and a fresh start."""
        if self.entries:
            audio = np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)
            yield as_batch([Bundle(self.entries, audio)])
        self.entries, self.audio, self.segments = [], [], 0


def read_bundles(batch: dict, *, options: SegmentOptions, capacity: int, output_format: str, mixdown: bool,
                 storage_options: dict | None) -> Iterator[dict]:
    """Plans and reads the files of a Ray Data batch (column `files`: JSON lists of FileTask dicts) into
    bundles of at most `capacity` segments (a segment of one channel each). A file that does not fit in one
    bundle is cut into pieces, each in a bundle of its own."""
    packer = _Packer(capacity)
    for group in batch["files"]:
        for task in json.loads(group):
            started = time.monotonic()
            ref = AudioRef(**task["ref"])
            try:
                info = audio_info(ref.uri, storage_options)
                reader = SourceReader(ref, info, storage_options)
                plan = plan_file(ref, info, task["output"], options, requested_format=output_format,
                                 mixdown=mixdown, reader=reader)
                count, per_bundle = plan.segments.count, max(1, capacity // plan.channels)
                if count <= per_bundle:
                    audio = _read(plan, range(count), reader)
                    if not packer.room_for(count * plan.channels):
                        yield from packer.take()
                    packer.add(Entry(task["file_id"], plan.to_dict(), 0, count, seconds=time.monotonic() - started),
                               audio, count * plan.channels)
                    continue
                yield from packer.take()
                yield from _pieces(task["file_id"], plan, reader, per_bundle, started)
            except Exception as error:  # noqa: BLE001 - one input's failure is its error row, never the job's
                packer.add(Entry(task["file_id"], error=describe_failure(ref.uri, error),
                                 error_kind=failure_kind(error), seconds=time.monotonic() - started))
    yield from packer.take()


def _pieces(file_id: int, plan: FilePlan, reader: SourceReader, per_bundle: int, started: float) -> Iterator[dict]:
    """A long file as pieces of consecutive segments, one bundle each. Every piece after the first starts
    with the last segment of the piece before, so that it can be cross-faded on its own.

    A read error part-way raises: the file then fails as a whole, and its staged pieces are never joined."""
    new_per_piece = max(1, per_bundle - 1)
    count = plan.segments.count
    pieces = -(-count // new_per_piece)
    for piece in range(pieces):
        begin, end = piece * new_per_piece, min((piece + 1) * new_per_piece, count)
        first = begin - (piece > 0)
        audio = _read(plan, range(first, end), reader)
        entry = Entry(file_id, plan.to_dict(), first, end - first, piece, pieces, primed=piece > 0,
                      seconds=time.monotonic() - started)
        started = time.monotonic()
        yield as_batch([Bundle([entry], audio)])


def _read(plan: FilePlan, indices: range, reader: SourceReader) -> np.ndarray:
    return np.concatenate([read_segments(plan, index, reader=reader).ravel() for index in indices])


def finish_bundles(batch: dict, *, storage_options: dict | None, finishing: Finishing, staging: str) -> dict:
    """Stitches and writes each whole file of the bundles, and stages each piece of a long file. Returns one
    small row per entry: `file_id`, `piece`, `pieces`, and `result` (JSON: the output's facts, a staged
    part's URI, or the error)."""
    rows = {"file_id": [], "piece": [], "pieces": [], "result": []}
    for bundle in bundles_from_rows(batch):
        for entry, segments in bundle.segments():
            started = time.monotonic()
            result: dict
            if entry.error is not None:
                result = {"error": entry.error, "error_kind": entry.error_kind}
            else:
                plan = entry.file_plan()
                try:
                    stitched = stitch_segments(plan, segments, entry.first, entry.primed)
                    if entry.pieces == 1:
                        result = write_output(plan, [stitched], storage_options, finishing)
                    else:
                        result = {"part": stage_part(stitched, plan, entry.piece, staging, storage_options),
                                  "plan": entry.plan}
                    result |= {"dot": entry.dot, "energy": entry.energy}
                except Exception as error:  # noqa: BLE001 - one file's failure is its error row
                    result = {"error": describe_failure(plan.output, error, "could not write output"),
                              "error_kind": failure_kind(error, writing=True)}
            result["seconds"] = round(entry.seconds + time.monotonic() - started, 3)
            rows["file_id"].append(entry.file_id)
            rows["piece"].append(entry.piece)
            rows["pieces"].append(entry.pieces)
            rows["result"].append(json.dumps(result))
    return {key: np.array(values) for key, values in rows.items()}


def stage_part(stitched: np.ndarray, plan: FilePlan, piece: int, staging: str, storage_options: dict | None) -> str:
    """Stores one piece's stitched 16 kHz samples [channels, n] until the whole file can be written."""
    uri = join_uri(staging, f"{staging_key(plan.output)}/piece-{piece:06d}.npy")
    buffer = io.BytesIO()
    np.save(buffer, stitched.astype(np.float32), allow_pickle=False)
    write_bytes_atomic(uri, buffer.getvalue(), storage_options)
    return uri


def staging_key(output: str) -> str:
    return hashlib.sha256(output.encode()).hexdigest()[:24]


def assemble_output(plan_values: dict, parts: list[str], storage_options: dict | None,
                    finishing: Finishing) -> dict:
    """Writes a long file from its staged pieces (in order), then removes them. A Ray task."""
    plan = FilePlan.from_dict(plan_values)

    def stitched():
        for uri in parts:
            yield np.load(io.BytesIO(read_bytes(uri, storage_options)), allow_pickle=False)

    facts = write_output(plan, stitched(), storage_options, finishing)
    fs, _ = fs_for(parts[0], storage_options)
    for uri in parts:
        fs.rm_file(fs_for(uri, storage_options)[1])
    return facts


def failure_kind(error: BaseException, writing: bool = False) -> str:
    """`input` for an input that is unusable in itself (reruns skip it until it changes), else `system`."""
    if isinstance(error, (AudioDecodeError, PathEscapeError)) and not writing:
        return "input"
    return "system"


def describe_failure(uri: str, error: BaseException, what: str = "") -> str:
    """One line naming the file and the reason."""
    reason = describe(error)
    if isinstance(error, AudioDecodeError):
        return reason if not what else f"{uri}: {what}: {error.reason}"
    return f"{uri}: {what + ': ' if what else ''}{reason}"
