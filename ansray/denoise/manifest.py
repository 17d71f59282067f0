"""The denoise job's manifest: one JSONL row per input, NeMo-style (`audio_filepath` is the output).

Rows are appended as files finish. On a local disk each row is appended and flushed at once; object
stores cannot append, so the whole manifest is rewritten atomically every `flush_seconds` and at the
end. A job killed mid-row leaves at most one torn last line, which readers skip. At the end the
manifest is compacted to the latest row per input.
"""

from __future__ import annotations

import json
import time

from ansray.io.jsonl import latest_by, read_jsonl
from ansray.io.storage import fs_for, write_bytes_atomic

STATUSES = ("ok", "error", "skipped")
LOCAL_PROTOCOLS = {"file", "local"}


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
        fs, self.path = fs_for(uri, storage_options)
        self.fs = fs
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.local = bool(protocols & LOCAL_PROTOCOLS)
        self._dirty = False
        self._last_flush = time.monotonic()
        if self.local:
            fs.makedirs(fs._parent(self.path), exist_ok=True)

    def append(self, row: dict) -> None:
        if row.get("status") not in STATUSES:
            raise ValueError(f"manifest row has invalid status: {row}")
        self.rows.append(row)
        line = json.dumps(row, sort_keys=True) + "\n"
        if self.local:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        else:
            self._dirty = True
            if time.monotonic() - self._last_flush >= self.flush_seconds:
                self.flush()

    def flush(self) -> None:
        if self.local or not self._dirty:
            return
        self._write_all(self.rows)
        self._dirty = False
        self._last_flush = time.monotonic()

    def compact(self) -> None:
        """Rewrites the manifest with the latest row per input, atomically."""
        self.rows = list(latest_rows(self.rows).values())
        self._write_all(self.rows)
        self._dirty = False

    def _write_all(self, rows: list[dict]) -> None:
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        write_bytes_atomic(self.uri, text.encode("utf-8"), self.storage_options)
