"""JSON Lines, the one parser of manifest rows (`storage.read_jsonl` reads them from any storage).

A manifest this project appends to (the denoise job's) is parsed tolerantly, since an appender killed
mid-row leaves a torn last line; one a user wrote is parsed strictly, and a bad line is an error naming
the file, the line and what was expected. Formats that mix JSON rows with plain lines (audio lists,
transcripts) walk `numbered_lines` and parse their JSON rows with `parse_row`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence

log = logging.getLogger(__name__)


class JsonLinesError(ValueError):
    """A line of a strictly read manifest that is not a JSON object with the fields expected."""


def numbered_lines(text: str, *, comments: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) for every line that holds something; with `comments`, lines
    starting with `#` hold nothing."""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not (comments and line.startswith("#")):
            yield number, line


def parse_row(line: str, required: Sequence[str] = ()) -> dict:
    """One JSON object holding every `required` field; ValueError says what is wrong."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(row, dict):
        raise ValueError(f"a JSON {type(row).__name__}, not an object")
    missing = [field for field in required if field not in row]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    return row


def parse_jsonl(
    text: str, source: str, *, required: Sequence[str] = (), strict: bool = False
) -> list[tuple[int, dict]]:
    """(line number, row) for every row of `text`, read from `source`. A line that is not an object
    with the `required` fields raises JsonLinesError when `strict`; otherwise it is logged and skipped."""
    rows = []
    for number, line in numbered_lines(text):
        try:
            rows.append((number, parse_row(line, required)))
        except ValueError as error:
            if strict:
                fields = f" with {' and '.join(required)}" if required else ""
                raise JsonLinesError(f"{source} line {number}: expected JSON{fields} ({error})") from None
            log.warning("%s line %d: skipping a torn or corrupt line (%s)", source, number, error)
    return rows


def latest_by(rows, field: str) -> dict:
    """The last row for each value of `field` (reruns append; the newest row decides)."""
    return {row[field]: row for row in rows if field in row}
