"""One input file's trip: plan (header, level, segments), read segments at 16 kHz, stitch, write.

Memory per step is bounded by a window (a whole file up to `WHOLE_FILE_SECONDS`): the output is
resampled back and encoded as its stitched samples arrive, and appears whole only at the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import soundfile as sf

from ansray.attenuation import dry_share, limit_attenuation
from ansray.denoise.quality import quality_columns
from ansray.io import AudioInfo, AudioRef, StreamResampler, downmix, read_audio, read_bytes, resample, write_bytes_atomic
from ansray.io.audio import AudioWriter
from ansray.level import measured_gains
from ansray.segments import MODEL_RATE, SegmentOptions, SegmentPlan, StitchInOrder, model_length, overlap_add

# Level statistics are gathered in windows of this many seconds, so long files are never held whole.
STATS_WINDOW_SECONDS = 30.0
# Source context read on both sides of a segment, so the resampler's filter sees real neighbours and
# the segment equals the same span of the whole file resampled at once (soxr is exactly shift-invariant
# on windows that start on a common sample of both rates' grids).
RESAMPLE_CONTEXT_SECONDS = 0.05
OUTPUT_FORMATS = ("same", "wav", "flac")
# Files up to this long are decoded once per task and sliced. Read window by window, a short file is
# decoded three times or more (two level passes, then each segment with its context), each time
# fetched again from object storage.
WHOLE_FILE_SECONDS = 60.0


class SourceReader:
    """Windows of one input's samples: a short file decoded once and sliced, a long one read per window."""

    def __init__(self, ref: AudioRef, info: AudioInfo, storage_options: dict | None = None):
        self.ref, self.info, self.storage_options = ref, info, storage_options
        self._whole = None

    def read(self, start: int, frames: int) -> np.ndarray:
        """[frames, channels] float32 from frame `start`, cut short at the end. Raises AudioDecodeError."""
        if self.info.duration > WHOLE_FILE_SECONDS:
            return read_audio(self.ref.uri, start=start, frames=frames, storage_options=self.storage_options)[0]
        if self._whole is None:
            self._whole = read_audio(self.ref.uri, storage_options=self.storage_options)[0]
        return self._whole[start : start + frames]


@dataclass(frozen=True)
class FilePlan:
    ref: AudioRef
    info: AudioInfo
    output: str
    format: str
    subtype: str
    gains: tuple[float, ...]  # per enhanced channel
    mixdown: bool
    segments: SegmentPlan

    @property
    def channels(self) -> int:
        return len(self.gains)

    @property
    def model_samples(self) -> int:
        return self.segments.num_samples

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FilePlan":
        return cls(
            ref=AudioRef(**values["ref"]),
            info=AudioInfo(**values["info"]),
            output=values["output"],
            format=values["format"],
            subtype=values["subtype"],
            gains=tuple(values["gains"]),
            mixdown=values["mixdown"],
            segments=SegmentPlan(**values["segments"]),
        )


def output_format(info: AudioInfo, requested: str) -> tuple[str, str]:
    """(format, subtype) of the output: the source's own, or WAV/FLAC keeping the bit depth."""
    if requested not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {requested!r}")
    if requested == "same":
        return info.format, info.subtype
    format = requested.upper()
    subtype = info.subtype if sf.check_format(format, info.subtype) else ("PCM_24" if format == "FLAC" else "PCM_16")
    if format == "FLAC" and not sf.check_format(format, subtype):
        subtype = "PCM_24"
    return format, subtype


def _windows(info: AudioInfo, seconds: float):
    step = max(1, int(seconds * info.sample_rate))
    for start in range(0, info.frames, step):
        yield start, min(step, info.frames - start)


def _prepared(data: np.ndarray, mixdown: bool) -> np.ndarray:
    return downmix(data) if mixdown else data


def plan_file(
    ref: AudioRef,
    info: AudioInfo,
    output: str,
    options: SegmentOptions,
    *,
    requested_format: str = "same",
    mixdown: bool = False,
    storage_options: dict | None = None,
    reader: SourceReader | None = None,
) -> FilePlan:
    """Measures the file's level (two windowed passes) and plans its segments. Raises AudioDecodeError.

    `reader` may be shared with `read_segments` so that a short file is decoded once."""
    format, subtype = output_format(info, requested_format)
    reader = reader or SourceReader(ref, info, storage_options)
    gains = measured_gains(1 if mixdown else info.channels, lambda: (
        _prepared(reader.read(start, frames), mixdown) for start, frames in _windows(info, STATS_WINDOW_SECONDS)))
    return FilePlan(
        ref=ref,
        info=info,
        output=output,
        format=format,
        subtype=subtype,
        gains=tuple(float(g) for g in gains),
        mixdown=mixdown,
        # A batch of one segment may have any length, so the segments are fitted to the file: a 2 s file
        # costs 2 s of model time, not a 10 s segment of zeros. Larger batches need one length.
        segments=options.plan(model_length(info.frames, info.sample_rate), fit=options.batch_size == 1),
    )


def read_segments(
    plan: FilePlan, index: int, storage_options: dict | None = None, reader: SourceReader | None = None
) -> np.ndarray:
    """Segment `index` of every enhanced channel, level-normalised at 16 kHz: [channels, segment].

    Pass one `reader` for all of a file's segments: a short file is then decoded once."""
    segments, info = plan.segments, plan.info
    start = segments.start(index)
    lo, hi = segments.signal_span(index)
    out = np.zeros((plan.channels, segments.segment), dtype=np.float32)
    if hi <= lo:
        return out
    # Source blocks of p samples map onto 16 kHz blocks of q samples exactly.
    g = math.gcd(info.sample_rate, MODEL_RATE)
    p, q = info.sample_rate // g, MODEL_RATE // g
    context = math.ceil(RESAMPLE_CONTEXT_SECONDS * info.sample_rate / p)
    first_block = max(lo // q - context, 0)
    last_block = math.ceil(hi / q) + context
    source_start = first_block * p
    source_frames = min(last_block * p, info.frames) - source_start
    reader = reader or SourceReader(plan.ref, info, storage_options)
    data = _prepared(reader.read(source_start, source_frames), plan.mixdown) * np.asarray(plan.gains, dtype=np.float32)
    at_model_rate = resample(data, info.sample_rate, MODEL_RATE)
    offset = first_block * q
    piece = at_model_rate[lo - offset : hi - offset].T
    out[:, lo - start : lo - start + piece.shape[1]] = piece
    return out


def stitch_segments(plan: FilePlan, segments: np.ndarray, first: int = 0, primed: bool = False) -> np.ndarray:
    """Cross-fades consecutive enhanced segments [count, channels, segment] of `plan`, the first being
    segment `first`, into the signal samples they complete: [channels, n] at 16 kHz.

    `primed`: the first segment only carries its tail into the next one's cross-fade (a long file's piece
    repeats the last segment of the piece before it), and its own samples are left out.
    """
    stitch = StitchInOrder(plan.segments, first=first)
    pieces = [stitch.add(segment) for segment in segments]
    return np.concatenate(pieces[1:] if primed else pieces, axis=-1)


IF_WORSE = ("keep-input", "attenuate")


@dataclass(frozen=True)
class Finishing:
    """What happens to a file's stitched output before and while it is written.

    quality: no-reference scores of input and output for the manifest ("dnsmos").
    attenuation_limit_db: noise is attenuated by at most this much (None: full suppression).
    if_worse: where DNSMOS OVRL of the output is below the input's, write the input unchanged
      ("keep-input") or the output re-mixed at `if_worse_limit_db` ("attenuate"); needs "dnsmos".
    """

    quality: tuple[str, ...] = ()
    attenuation_limit_db: float | None = None
    if_worse: str | None = None
    if_worse_limit_db: float = 6.0

    def __post_init__(self):
        dry_share(self.attenuation_limit_db)
        dry_share(self.if_worse_limit_db)
        if self.if_worse is not None and self.if_worse not in IF_WORSE:
            raise ValueError(f"--if-worse must be one of {IF_WORSE}, got {self.if_worse!r}")
        if self.if_worse and "dnsmos" not in self.quality:
            raise ValueError("--if-worse compares DNSMOS before and after: it needs --quality dnsmos")


def write_output(plan: FilePlan, stitched: Iterable[np.ndarray], storage_options: dict | None = None,
                 finishing: Finishing = Finishing()) -> dict:
    """Writes the output from its stitched 16 kHz samples ([channels, n] chunks, in order): resampled back
    to the source rate as they arrive, level restored, mixed with the input as the attenuation limit says,
    encoded in the source's (or the requested) format, published atomically. With quality scores the
    chunks are scored first, which may choose the input, or a stronger limit, instead (`Finishing.if_worse`).

    Returns the output's facts for the manifest: `scores` holds the scores, the limit applied and what was
    written (`output_source`: enhanced, input or attenuated).
    """
    facts = {"audio_filepath": plan.output, "duration": plan.info.duration, "sample_rate": plan.info.sample_rate,
             "channels": plan.channels}
    limit, source = finishing.attenuation_limit_db, "enhanced"
    scores = {}
    if finishing.quality:
        stitched = list(stitched)  # held at 16 kHz: scored before anything is written
        scores = _quality_scores(plan, np.concatenate(stitched, axis=-1), storage_options, finishing.quality)
        before, after = scores.get("dnsmos_ovrl_before"), scores.get("dnsmos_ovrl_after")
        if finishing.if_worse and before is not None and after is not None and after < before:
            source = "input" if finishing.if_worse == "keep-input" else "attenuated"
            limit = finishing.if_worse_limit_db if source == "attenuated" else None
    if source == "input":
        _write_input_unchanged(plan, storage_options)
    else:
        _write_restored(plan, stitched, limit, storage_options)
    facts["scores"] = scores | {"attenuation_limit_db": limit, "output_source": source}
    return facts


def _write_restored(plan: FilePlan, stitched: Iterable[np.ndarray], limit_db: float | None,
                    storage_options: dict | None) -> None:
    gains = np.asarray(plan.gains, dtype=np.float32)
    from_model = StreamResampler(MODEL_RATE, plan.info.sample_rate, plan.channels)
    frames = plan.info.frames
    # The dry part of the mix is the untouched original at its own rate: above 8 kHz too, which the
    # 16 kHz model cannot produce.
    original = SourceReader(plan.ref, plan.info, storage_options) if dry_share(limit_db) else None
    with AudioWriter(plan.output, plan.info.sample_rate, plan.channels, format=plan.format, subtype=plan.subtype,
                     storage_options=storage_options) as writer:
        for samples, last in _with_last(stitched):
            restored = from_model.push(np.ascontiguousarray(samples.T), last=last)
            restored = restored[: frames - writer.frames] / gains
            if original is not None:
                dry = _prepared(original.read(writer.frames, len(restored)), plan.mixdown)
                restored = limit_attenuation(restored, dry, limit_db)
            writer.write(restored)
        if writer.frames != frames:
            raise RuntimeError(f"{plan.output}: stitching produced {writer.frames} of {frames} frames")


def _write_input_unchanged(plan: FilePlan, storage_options: dict | None) -> None:
    """The input as the output: its very bytes where the output keeps its format, else its samples."""
    info = plan.info
    if (plan.format, plan.subtype) == (info.format, info.subtype) and not plan.mixdown:
        write_bytes_atomic(plan.output, read_bytes(plan.ref.uri, storage_options), storage_options)
        return
    reader = SourceReader(plan.ref, info, storage_options)
    with AudioWriter(plan.output, info.sample_rate, plan.channels, format=plan.format, subtype=plan.subtype,
                     storage_options=storage_options) as writer:
        for start, frames in _windows(info, STATS_WINDOW_SECONDS):
            writer.write(_prepared(reader.read(start, frames), plan.mixdown))


def _quality_scores(plan: FilePlan, enhanced: np.ndarray, storage_options: dict | None,
                    quality: tuple[str, ...]) -> dict:
    """Scores of the input and the enhanced output ([channels, n] at 16 kHz, model level)."""
    gains = np.asarray(plan.gains, dtype=np.float32)[:, None]
    # The input as the model saw it (16 kHz, same channels), rebuilt from its segments: the
    # cross-fade of identical copies is the identity; a long file is read one window at a time.
    reader = SourceReader(plan.ref, plan.info, storage_options)
    noisy = overlap_add([read_segments(plan, i, reader=reader) for i in range(plan.segments.count)], plan.segments)
    return quality_columns(noisy / gains, enhanced / gains, MODEL_RATE, quality)


def _with_last(chunks: Iterable[np.ndarray]):
    """(chunk, is_last) for each chunk; an empty stream yields nothing."""
    iterator = iter(chunks)
    previous = next(iterator, None)
    while previous is not None:
        current = next(iterator, None)
        yield previous, current is None
        previous = current
