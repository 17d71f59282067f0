"""Source corpora for synthesis: listing and probing clean, noise and RIR files, and reading windows.

Sources are probed once (header only; RIRs are read whole to estimate their T60) and the resulting
tables are what the synthesis job broadcasts to its workers. Files that cannot be decoded are
reported as bad sources and left out, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ansray.data.rir import estimate_t60
from ansray.io import AudioDecodeError, audio_info, downmix, list_audio, read_audio, resample

log = logging.getLogger(__name__)

PROBE_THREADS = 32  # header reads are I/O-bound: threads hide object-store latency


@dataclass(frozen=True)
class Source:
    """One source file: its URI, native rate and channel count, and length in frames at `rate`."""

    uri: str
    sample_rate: int
    channels: int
    frames: int

    def frames_at(self, rate: int) -> int:
        return self.frames * rate // self.sample_rate


@dataclass(frozen=True)
class SourceTable:
    """The usable sources of one kind (clean, noise or rir), in listing order."""

    sources: tuple[Source, ...]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.sources)

    @cached_property
    def frames(self) -> np.ndarray:
        """[N] lengths at the mixing rate, as `build_clip` wants them."""
        return np.array([s.frames_at(self.sample_rate) for s in self.sources], dtype=np.int64)

    def read(self, index: int, start: int, frames: int, storage_options: dict | None = None) -> np.ndarray:
        return read_window(self.sources[index], start, frames, self.sample_rate, storage_options)

    def digest(self) -> str:
        """A fingerprint of the table: a resumed run must see the same sources in the same order."""
        rows = [[s.uri, s.sample_rate, s.frames] for s in self.sources]
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def probe_sources(
    inputs: list[str] | tuple[str, ...],
    sample_rate: int,
    storage_options: dict | None = None,
) -> tuple[SourceTable, dict[str, str]]:
    """Lists `inputs` (folders, globs, manifests or files) and reads each header.

    Returns the table of usable sources and {uri: reason} for the files that could not be probed.
    """
    refs = list_audio(list(inputs), storage_options=storage_options)
    results = _map_threads(lambda uri: _probe(uri, storage_options), [r.uri for r in refs])
    return _tabulate(results, sample_rate)


def probe_rirs(
    inputs: list[str] | tuple[str, ...],
    sample_rate: int,
    t60_range: tuple[float, float] | None,
    storage_options: dict | None = None,
) -> tuple[SourceTable, dict[str, str]]:
    """Like `probe_sources` for room impulse responses, keeping those whose T60 lies in `t60_range`.

    RIRs outside the range are left out silently (they are fine files, just not wanted); RIRs whose
    T60 cannot be estimated are left out when a range is given.
    """
    refs = list_audio(list(inputs), storage_options=storage_options)

    def probe(uri: str) -> Source | str | None:
        source = _probe(uri, storage_options)
        if isinstance(source, str) or t60_range is None:
            return source
        try:
            t60 = estimate_t60(read_rir(source, sample_rate, storage_options), sample_rate)
        except AudioDecodeError as error:
            return error.reason
        return source if t60_range[0] <= t60 <= t60_range[1] else None

    table, bad = _tabulate(_map_threads(probe, [r.uri for r in refs]), sample_rate)
    if t60_range is not None:
        log.info("%d of %d RIRs have a T60 in %s s", len(table), len(refs) - len(bad), t60_range)
    return table, bad


def read_window(
    source: Source, start: int, frames: int, sample_rate: int, storage_options: dict | None = None
) -> np.ndarray:
    """Frames [start, start + frames) of `source`, counted at `sample_rate`: mono float32 [<= frames].

    Channels are averaged, as DNS does; other rates are resampled from the matching native window.
    Raises AudioDecodeError for an unusable file.
    """
    if source.sample_rate == sample_rate:
        data, _, _ = read_audio(source.uri, start=start, frames=frames, storage_options=storage_options)
        return downmix(data)[:, 0]
    ratio = source.sample_rate / sample_rate
    native_start = int(start * ratio)
    native_frames = int(np.ceil(frames * ratio)) + 1
    data, _, _ = read_audio(source.uri, start=native_start, frames=native_frames, storage_options=storage_options)
    return resample(downmix(data)[:, 0], source.sample_rate, sample_rate)[:frames]


def read_rir(source: Source, sample_rate: int, storage_options: dict | None = None) -> np.ndarray:
    """The whole RIR [K] at `sample_rate`. Only the first channel: averaging the microphones of an
    array would smear the direct path."""
    data, _, _ = read_audio(source.uri, storage_options=storage_options)
    return resample(data[:, 0], source.sample_rate, sample_rate)


def _probe(uri: str, storage_options: dict | None) -> Source | str:
    try:
        info = audio_info(uri, storage_options)
    except AudioDecodeError as error:
        return error.reason
    return Source(uri, info.sample_rate, info.channels, info.frames)


def _map_threads(function, uris: list[str]) -> list[tuple[str, object]]:
    with ThreadPoolExecutor(max_workers=PROBE_THREADS) as pool:
        return list(zip(uris, pool.map(function, uris), strict=True))


def _tabulate(results: list[tuple[str, object]], sample_rate: int) -> tuple[SourceTable, dict[str, str]]:
    sources = tuple(result for _, result in results if isinstance(result, Source))
    bad = {uri: result for uri, result in results if isinstance(result, str)}
    for uri, reason in bad.items():
        log.warning("bad source skipped: %s: %s", uri, reason)
    return SourceTable(sources, sample_rate), bad
