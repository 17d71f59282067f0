"""JSON Lines manifests on any storage: read tolerantly, since an appender killed mid-row leaves a
torn last line."""

from __future__ import annotations

import json
import logging

from ansray.io.storage import exists, read_bytes

log = logging.getLogger(__name__)


def read_jsonl(uri: str, storage_options: dict | None = None, *, missing_ok: bool = False) -> list[tuple[int, dict]]:
    """(line number, row) for every parsable line; torn or corrupt lines are logged and skipped."""
    if missing_ok and not exists(uri, storage_options):
        return []
    rows = []
    for number, line in enumerate(read_bytes(uri, storage_options).decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError:
            log.warning("%s line %d: skipping a torn or corrupt line", uri, number)
    return rows


def latest_by(rows, field: str) -> dict:
    """The last row for each value of `field` (reruns append; the newest row decides)."""
    return {row[field]: row for row in rows if isinstance(row, dict) and field in row}
