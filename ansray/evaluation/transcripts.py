"""Reference transcripts for word error rates, and which evaluation item each belongs to.

A transcripts file holds either `ID text` lines (LibriSpeech's *.trans.txt, Kaldi's `text`) or JSON
lines with `audio_filepath` and `text` (a NeMo manifest). An entry belongs to the item one of whose
files (or its key) ends with the entry's path less its audio extension: `198-209-0000` matches
`.../198/209/198-209-0000.flac`, and `a/one.wav` matches `s3://b/clean/a/one.wav`."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import replace

from ansray.evaluation.pairing import EvaluationItem
from ansray.io import AUDIO_EXTENSIONS, read_bytes
from ansray.io.jsonl import numbered_lines, parse_row


class TranscriptError(ValueError):
    """A transcripts file that cannot be read as either format, or an entry that fits several items."""


def is_json_lines(uri: str) -> bool:
    return uri.lower().endswith((".jsonl", ".json"))


def read_transcripts(uri: str, storage_options: dict | None = None) -> dict[tuple[str, ...], str]:
    """The entries of a transcripts file: path parts less the audio extension -> text. JSON lines
    without `text` are skipped (a manifest of audio only names no transcripts). Raises TranscriptError
    for a line of neither format, or one ID given two different texts."""
    entries: dict[tuple[str, ...], str] = {}
    text = read_bytes(uri, storage_options).decode("utf-8")
    for number, line in numbered_lines(text, comments=True):
        if is_json_lines(uri):
            try:
                row = parse_row(line, ("audio_filepath",))
            except ValueError as error:
                raise TranscriptError(
                    f"{uri} line {number}: expected JSON with audio_filepath and text ({error})"
                ) from None
            identifier, transcript = row["audio_filepath"], row.get("text")
            if transcript is None:
                continue
        else:
            identifier, _, transcript = line.partition(" ")
            transcript = transcript.strip()
        parts = path_parts(identifier)
        if parts in entries and entries[parts] != transcript:
            raise TranscriptError(f"{uri} line {number}: {identifier!r} has two different transcripts")
        entries[parts] = str(transcript)
    return entries


def path_parts(path: str) -> tuple[str, ...]:
    """The folders and name of `path` (any URI), less the protocol and an audio extension."""
    path = path.split("://", 1)[-1].replace("\\", "/")
    stem, extension = posixpath.splitext(path)
    if extension.lower() in AUDIO_EXTENSIONS:
        path = stem
    return tuple(part for part in path.split("/") if part and part != ".")


def attach_transcripts(
    items: Sequence[EvaluationItem], sources: Iterable[dict[tuple[str, ...], str]]
) -> list[EvaluationItem]:
    """`items` with `text` set from the first source that has an entry for them (see match_transcript).
    Raises TranscriptError where one entry is the match of two items: their paths must tell them apart."""
    sources = list(sources)
    matched_by: list[dict[tuple[str, ...], str]] = [{} for _ in sources]
    attached = []
    for item in items:
        text = None
        for source, matched in zip(sources, matched_by):
            entry = match_transcript(item, source)
            if entry is None:
                continue
            if entry in matched:
                raise TranscriptError(
                    f"the transcript {'/'.join(entry)!r} fits both {matched[entry]!r} and {item.key!r}: "
                    "give its path as far as it tells them apart"
                )
            matched[entry] = item.key
            text = source[entry]
            break
        attached.append(replace(item, text=text))
    return attached


def match_transcript(item: EvaluationItem, entries: dict[tuple[str, ...], str]) -> tuple[str, ...] | None:
    """The entry whose path is the longest ending of the path of one of the item's files or of its key;
    None if there is none."""
    files = (*item.enhanced.values(), item.noisy, item.clean)
    paths = [path_parts(item.key)] + [path_parts(uri) for uri in files if uri]
    best = None
    for parts in paths:
        for length in range(len(parts), 0, -1):
            if parts[-length:] in entries:
                if best is None or length > len(best):
                    best = parts[-length:]
                break
    return best
