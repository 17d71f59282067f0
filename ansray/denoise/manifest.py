"""The denoise job's manifest: one JSONL row per input, NeMo-style (`audio_filepath` is the output).

Rows are appended as files finish. On a local disk each row is appended and flushed at once; object
stores cannot append, so the whole manifest is rewritten atomically every `flush_seconds` and at the
end. A job killed mid-row leaves at most one torn last line: readers skip it, and the next writer cuts
it off before appending. At the end the manifest is compacted to the latest row per input, atomically,
so that a failed compaction (a full disk) leaves the appended manifest as it was.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field

from ansray.io import latest_by, read_jsonl
from ansray.io.storage import fs_for, write_bytes_atomic
from ansray.io.uris import is_local

log = logging.getLogger(__name__)

STATUSES = ("ok", "error", "skipped")
# input: the file itself is unusable (skipped on reruns until it changes); system: storage, workers or
# the machine failed (retried on every rerun); plan: refused by this run's flags before any work, such
# as two inputs whose outputs would collide (decided again on every run).
ERROR_KINDS = ("input", "system", "plan")


class ManifestWriteError(OSError):
    """The manifest could not be written (a full disk, lost permissions): the job must stop."""


@dataclass
class ManifestRow:
    """One input's outcome. `scores` holds optional per-file columns (DNSMOS, gains), flattened into the row."""

    input_filepath: str
    input_stamp: str
    status: str
    audio_filepath: str | None = None
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    error: str | None = None
    error_kind: str | None = None
    seconds_processing: float | None = None
    model: dict | None = None
    scores: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"manifest row has invalid status {self.status!r}: {self.input_filepath}")
        if self.status == "error" and self.error_kind not in ERROR_KINDS:
            raise ValueError(f"manifest row has invalid error kind {self.error_kind!r}: {self.input_filepath}")

    @classmethod
    def failed(cls, input_filepath: str, input_stamp: str, reason: str, kind: str, **facts) -> "ManifestRow":
        return cls(input_filepath, input_stamp, "error", error=reason, error_kind=kind, **facts)

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "scores"}
        return values | self.scores

    @classmethod
    def from_dict(cls, values: dict) -> "ManifestRow":
        names = {f.name for f in dataclasses.fields(cls)} - {"scores"}
        known = {k: v for k, v in values.items() if k in names}
        return cls(**known, scores={k: v for k, v in values.items() if k not in names})


def read_manifest_rows(uri: str, storage_options: dict | None = None) -> list[dict]:
    """Every complete row of the manifest at `uri` (none if it does not exist yet)."""
    return [row for _, row in read_jsonl(uri, storage_options, missing_ok=True)]


def latest_rows(rows: list[dict]) -> dict[str, dict]:
    """The last row for each input."""
    return latest_by(rows, "input_filepath")


class ManifestWriter:
    def __init__(self, uri: str, existing: list[dict], storage_options: dict | None = None, flush_seconds: float = 30.0):
        self.uri = uri
        self.storage_options = storage_options
        self.rows = list(existing)
        self.flush_seconds = flush_seconds
        self.local = is_local(uri)
        self.path = fs_for(uri, storage_options)[1]
        self._dirty = False
        self._last_flush = time.monotonic()
        if self.local:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            _cut_torn_tail(self.path)

    def append(self, row: ManifestRow) -> None:
        """Records `row`; raises ManifestWriteError if it cannot be stored."""
        values = row.to_dict()
        self.rows.append(values)
        if not self.local:
            self._dirty = True
            if time.monotonic() - self._last_flush >= self.flush_seconds:
                self.flush()
            return
        line = json.dumps(values, sort_keys=True) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        except OSError as error:
            _cut_torn_tail(self.path)
            raise ManifestWriteError(f"{self.uri}: cannot append to the manifest: {error}") from None

    def flush(self) -> None:
        if self.local or not self._dirty:
            return
        self._write_all(self.rows)
        self._dirty = False
        self._last_flush = time.monotonic()

    def compact(self) -> None:
        """Rewrites the manifest with the latest row per input, atomically. A compaction that cannot be
        written (a full disk) is skipped with a warning: the appended rows are all still there."""
        latest = list(latest_rows(self.rows).values())
        try:
            self._write_all(latest)
        except ManifestWriteError as error:
            if not self.local:
                raise
            log.warning("%s; the appended manifest is kept as it is", error)
            return
        self.rows = latest
        self._dirty = False

    def _write_all(self, rows: list[dict]) -> None:
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        try:
            write_bytes_atomic(self.uri, text.encode("utf-8"), self.storage_options)
        except OSError as error:
            raise ManifestWriteError(f"{self.uri}: cannot write the manifest: {error}") from None


def _cut_torn_tail(path: str) -> None:
    """Truncates a local manifest after its last complete line, so that the next row starts a line of its
    own instead of being glued onto a torn one (which would lose both)."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            window = min(size, 1 << 20)
            f.seek(size - window)
            tail = f.read(window)
            newline = tail.rfind(b"\n")
            keep = 0 if newline < 0 and window == size else size - window + newline + 1
            if newline < 0 and window < size:
                return  # a last line over 1 MiB: leave it, readers skip it
            log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted write", path, size - keep)
            f.truncate(keep)
    except FileNotFoundError:
        return
