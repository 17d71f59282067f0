"""Reads a training set back as (noisy, clean) pairs, from any of the forms synthesis writes.

- a DNS folder with `noisy/` and `clean/` (the official DNS sets too), paired on `fileid_N`;
- a JSONL manifest with `input_filepath` and `target_filepath` (WAV paths or `<shard>#row=R`);
- Parquet shards: `iter_shard_pairs`, or `ray.data.read_parquet(...).map_batches(decode_shard_batch)`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ansray.data.layouts import FILEID, SHARD_ROW, decode_shard_batch, iter_shard
from ansray.io import downmix, join_uri, list_audio, open_input, read_audio, read_jsonl, resample
from ansray.io.uris import resolve_entry

__all__ = [
    "PairRef", "TrainingPairsError", "decode_shard_batch", "iter_shard_pairs", "list_pairs", "list_shards", "read_pair",
]


class TrainingPairsError(ValueError):
    """Noisy and clean files that do not pair up one to one."""


@dataclass(frozen=True)
class PairRef:
    """Where one (noisy, clean) pair lives: two audio URIs, or two `<shard>#row=R` references."""

    noisy: str
    clean: str
    fileid: int | None = None


def list_pairs(uri: str, *, storage_options: dict | None = None) -> list[PairRef]:
    """The pairs named by a JSONL manifest (`*.jsonl`), or found in a DNS folder (`noisy/`, `clean/`)."""
    if uri.endswith(".jsonl"):
        return _manifest_pairs(uri, storage_options)
    return _dns_pairs(uri, storage_options)


def read_pair(ref: PairRef, *, sample_rate: int = 16000, storage_options: dict | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(noisy [T], clean [T]) float32 mono at `sample_rate`."""
    shard_row = SHARD_ROW.match(ref.noisy)
    if shard_row and ref.clean == ref.noisy:
        with open_input(shard_row["shard"], storage_options) as file:
            row = _shard_row(pq.ParquetFile(file), int(shard_row["row"]))
        decoded = decode_shard_batch(row.to_pydict())
        rate = decoded["sample_rate"][0]
        return resample(decoded["noisy"][0], rate, sample_rate), resample(decoded["clean"][0], rate, sample_rate)
    return _read_mono(ref.noisy, sample_rate, storage_options), _read_mono(ref.clean, sample_rate, storage_options)


def iter_shard_pairs(uri: str, *, storage_options: dict | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """(noisy [T], clean [T], meta) for every row of one shard, or of every shard below a folder."""
    if uri.endswith(".parquet"):
        yield from iter_shard(uri, storage_options)
        return
    for shard in list_shards(uri, storage_options=storage_options):
        yield from iter_shard(shard, storage_options)


def list_shards(uri: str, *, storage_options: dict | None = None) -> list[str]:
    """The `.parquet` files below `uri`, sorted by path."""
    return [ref.uri for ref in list_audio(uri, extensions=(".parquet",), storage_options=storage_options)]


def _manifest_pairs(uri: str, storage_options: dict | None) -> list[PairRef]:
    """Pairs of a JSONL manifest; relative paths are relative to the manifest's folder."""
    folder = posixpath.dirname(uri)
    pairs = []
    fields = ("input_filepath", "target_filepath")
    for number, row in read_jsonl(uri, storage_options, required=fields, strict=True):
        paths = [row[field] for field in fields]
        if not all(isinstance(path, str) for path in paths):
            raise TrainingPairsError(f"{uri} line {number}: {' and '.join(fields)} must be paths, got {paths!r}")
        noisy, clean = (resolve_entry(path, folder) for path in paths)
        pairs.append(PairRef(noisy, clean, row.get("fileid")))
    return pairs


def _dns_pairs(root: str, storage_options: dict | None) -> list[PairRef]:
    found = {}
    for folder in ("noisy", "clean"):
        refs = list_audio(join_uri(root, folder), storage_options=storage_options)
        by_id = {}
        for ref in refs:
            match = FILEID.search(ref.key)
            if match is None:
                raise TrainingPairsError(f"{ref.uri} has no fileid_N in its name")
            by_id[int(match.group(1))] = ref.uri
        found[folder] = by_id
    unpaired = found["noisy"].keys() ^ found["clean"].keys()
    if unpaired:
        raise TrainingPairsError(f"{root}: file ids without a partner in noisy/ or clean/: {sorted(unpaired)[:10]}")
    return [PairRef(found["noisy"][i], found["clean"][i], i) for i in sorted(found["noisy"])]


def _read_mono(uri: str, sample_rate: int, storage_options: dict | None) -> np.ndarray:
    data, rate, _ = read_audio(uri, storage_options=storage_options)
    return resample(downmix(data)[:, 0], rate, sample_rate)


def _shard_row(shard: pq.ParquetFile, row: int) -> pa.Table:
    """Row `row` of a shard, reading only its row group."""
    for group in range(shard.num_row_groups):
        rows = shard.metadata.row_group(group).num_rows
        if row < rows:
            return shard.read_row_group(group).slice(row, 1)
        row -= rows
    raise IndexError(f"row out of range of a shard with {shard.metadata.num_rows} rows")
