"""Where a synthesized set lives: DNS folders of 16-bit WAV files, or Parquet shards.

- dns: `<split>/noisy/<clean names>_<noise names>_snr{S}_tl{L}_fileid_{N}.wav`,
  `<split>/clean/clean_fileid_{N}.wav`, `<split>/noise/noise_fileid_{N}.wav`, as the DNS Challenge
  names them, plus `<split>/meta/meta_fileid_{N}.json`, written last, which marks the mixture done.
- shards: `<split>/shard-{K:05d}.parquet` with columns fileid, noisy, clean (FLAC bytes or raw
  little-endian int16), sample_rate, encoding and meta (JSON). Manifest paths into a shard read
  `<shard>#row={R}`.
Manifest paths are relative to the output root, where the manifests are.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from ansray.io import encode_audio, fs_for, join_uri, open_input, read_bytes, write_bytes_atomic

LAYOUTS = ("dns", "shards")
SHARD_ENCODINGS = ("flac", "pcm16")
FILEID = re.compile(r"fileid_(\d+)\.\w+$")
SHARD_ROW = re.compile(r"^(?P<shard>.+\.parquet)#row=(?P<row>\d+)$")
SHARD_ROW_GROUP = 16  # rows per Parquet row group: a reader holds about this many mixtures at once
MAX_NAME_PART = 100  # characters of joined source names in a noisy file name, as DNS truncates them

SHARD_SCHEMA = pa.schema(
    [
        ("fileid", pa.int64()),
        ("noisy", pa.binary()),
        ("clean", pa.binary()),
        ("sample_rate", pa.int32()),
        ("encoding", pa.string()),
        ("meta", pa.string()),
    ]
)


@dataclass
class Mixture:
    """One generated mixture: signals [T] float32 and its record (the manifest row without paths)."""

    fileid: int
    noisy: np.ndarray
    clean: np.ndarray
    noise: np.ndarray
    record: dict


# ---------------------------------------------------------------------------------------------
# dns layout


def noisy_name(record: dict) -> str:
    """`<clean names>_<noise names>_snr{S}_tl{L}_fileid_{N}.wav` from a mixture record."""
    clean = _joined_stems(record["clean_sources"])
    noise = _joined_stems(record["noise_sources"])
    return f"{clean}_{noise}_snr{record['snr']:g}_tl{record['target_level']}_fileid_{record['fileid']}.wav"


def meta_key(split: str, fileid: int) -> str:
    return f"{split}/meta/meta_fileid_{fileid}.json"


def dns_row(record: dict) -> dict:
    """The manifest row of a mixture record: the record plus its file paths, relative to the
    output root (where the manifests are), so that a set can be moved or copied whole."""
    split, fileid = record["split"], record["fileid"]
    return dict(
        record,
        input_filepath=f"{split}/noisy/{noisy_name(record)}",
        target_filepath=f"{split}/clean/clean_fileid_{fileid}.wav",
        noise_filepath=f"{split}/noise/noise_fileid_{fileid}.wav",
    )


def write_dns_mixture(output: str, mixture: Mixture, storage_options: dict | None = None) -> dict:
    """Writes the three WAV files, then the meta file that marks them complete; returns the row."""
    row = dns_row(mixture.record)
    rate = mixture.record["sample_rate"]
    for key, signal in (("input_filepath", mixture.noisy), ("noise_filepath", mixture.noise),
                        ("target_filepath", mixture.clean)):
        write_bytes_atomic(join_uri(output, row[key]), encode_audio(signal, rate, "WAV", "PCM_16"), storage_options)
    meta = join_uri(output, meta_key(mixture.record["split"], mixture.fileid))
    write_bytes_atomic(meta, json.dumps(mixture.record, sort_keys=True).encode(), storage_options)
    return row


def read_dns_row(output: str, split: str, fileid: int, storage_options: dict | None = None) -> dict:
    """The manifest row of a mixture written earlier, from its meta file."""
    return dns_row(json.loads(read_bytes(join_uri(output, meta_key(split, fileid)), storage_options)))


def dns_done(output: str, splits: Iterable[str], storage_options: dict | None = None) -> set[int]:
    """File ids whose meta file exists, from one listing per split."""
    return {
        int(match.group(1))
        for key in _find_keys(output, [f"{split}/meta" for split in splits], storage_options)
        if (match := FILEID.search(key))
    }


# ---------------------------------------------------------------------------------------------
# shards layout


def shard_key(split: str, number: int) -> str:
    return f"{split}/shard-{number:05d}.parquet"


def write_shard(
    output: str, key: str, mixtures: Iterable[Mixture], encoding: str, storage_options: dict | None = None
) -> list[dict]:
    """Encodes `mixtures` into the Parquet shard `key` below `output`, written atomically; returns
    their manifest rows.

    Row groups are written as mixtures arrive, so memory holds the encoded shard, not its signals.
    """
    buffer = pa.BufferOutputStream()
    audio_compression = "none" if encoding == "flac" else "zstd"  # FLAC bytes don't compress further
    compression = {"fileid": "zstd", "noisy": audio_compression, "clean": audio_compression,
                   "sample_rate": "zstd", "encoding": "zstd", "meta": "zstd"}
    rows, pending = [], []
    with pq.ParquetWriter(buffer, SHARD_SCHEMA, compression=compression) as writer:
        for mixture in mixtures:
            rate = mixture.record["sample_rate"]
            pending.append({
                "fileid": mixture.fileid,
                "noisy": encode_signal(mixture.noisy, rate, encoding),
                "clean": encode_signal(mixture.clean, rate, encoding),
                "sample_rate": rate,
                "encoding": encoding,
                "meta": json.dumps(mixture.record, sort_keys=True),
            })
            rows.append(_shard_row(key, len(rows), mixture.record))
            if len(pending) == SHARD_ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(pending, SHARD_SCHEMA))
                pending = []
        if pending:
            writer.write_table(pa.Table.from_pylist(pending, SHARD_SCHEMA))
    write_bytes_atomic(join_uri(output, key), memoryview(buffer.getvalue()), storage_options)
    return rows


def read_shard_rows(output: str, key: str, storage_options: dict | None = None) -> list[dict]:
    """The manifest rows of a written shard, from its meta column alone."""
    with open_input(join_uri(output, key), storage_options) as file:
        metas = pq.read_table(file, columns=["meta"]).column("meta").to_pylist()
    return [_shard_row(key, row, json.loads(meta)) for row, meta in enumerate(metas)]


def shards_done(output: str, splits: Iterable[str], storage_options: dict | None = None) -> set[str]:
    """Keys (as `shard_key` makes them) of the shards that exist, from one listing per split."""
    return {key for key in _find_keys(output, list(splits), storage_options) if key.endswith(".parquet")}


def iter_shard(uri: str, storage_options: dict | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """(noisy [T], clean [T], meta) for each row of a shard, one row group at a time."""
    with open_input(uri, storage_options) as file:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=SHARD_ROW_GROUP):
            decoded = decode_shard_batch(batch.to_pydict())
            yield from zip(decoded["noisy"], decoded["clean"], decoded["meta"], strict=True)


def decode_shard_batch(batch: dict) -> dict:
    """A batch of shard rows (dict of columns) with noisy and clean decoded to float32 arrays [T]
    and meta parsed; usable as `ray.data.read_parquet(...).map_batches(decode_shard_batch)`."""
    rates, encodings = list(batch["sample_rate"]), list(batch["encoding"])
    return dict(
        batch,
        noisy=[decode_signal(b, e, r) for b, e, r in zip(batch["noisy"], encodings, rates, strict=True)],
        clean=[decode_signal(b, e, r) for b, e, r in zip(batch["clean"], encodings, rates, strict=True)],
        meta=[json.loads(m) if isinstance(m, str) else m for m in batch["meta"]],
    )


def encode_signal(signal: np.ndarray, sample_rate: int, encoding: str) -> bytes:
    """[T] float -> FLAC bytes or raw little-endian int16, both on the 16-bit grid."""
    if encoding == "flac":
        return encode_audio(signal, sample_rate, "FLAC", "PCM_16")
    if encoding == "pcm16":
        return encode_audio(signal, sample_rate, "RAW", "PCM_16")  # headerless, host (little) endian
    raise ValueError(f"encoding must be one of {SHARD_ENCODINGS}, got {encoding!r}")


def decode_signal(data: bytes, encoding: str, sample_rate: int) -> np.ndarray:
    """Bytes from `encode_signal` -> [T] float32."""
    if encoding == "flac":
        signal, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        if rate != sample_rate:
            raise ValueError(f"FLAC data at {rate} Hz where the row says {sample_rate} Hz")
        return signal[:, 0]
    if encoding == "pcm16":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    raise ValueError(f"encoding must be one of {SHARD_ENCODINGS}, got {encoding!r}")


# ---------------------------------------------------------------------------------------------


def manifest_line(row: dict) -> bytes:
    """One JSONL line; sorted keys, so that equal rows give equal bytes."""
    return (json.dumps(row, sort_keys=True) + "\n").encode()


def _shard_row(key: str, row: int, record: dict) -> dict:
    """A manifest row pointing into a shard: both paths read `<shard key>#row=R`, relative to the
    output root like the dns layout's."""
    return dict(record, input_filepath=f"{key}#row={row}", target_filepath=f"{key}#row={row}")


def _joined_stems(sources: list[dict]) -> str:
    stems = [posixpath.splitext(posixpath.basename(s["uri"]))[0] for s in sources]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(stems))[:MAX_NAME_PART]


def _find_keys(output: str, folders: list[str], storage_options: dict | None) -> list[str]:
    """Paths of the files below `output/<folder>`, relative to `output`."""
    fs, root = fs_for(output, storage_options)
    root = root.rstrip("/")
    keys = []
    for folder in folders:
        path = f"{root}/{folder}"
        fs.invalidate_cache(path)
        keys.extend(found[len(root) + 1 :] for found in fs.find(path))
    return keys
