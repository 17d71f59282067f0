"""Reads and writes audio at any rate and channel count, from and to any storage, with libsndfile.

Reads stream from a file object (no local copy) and can seek to a window; writes are atomic.
Every way an input can be unusable becomes one AudioDecodeError that names the URI and the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from collections.abc import Iterator

import numpy as np
import soundfile as sf

from ansray.io.errors import LocatedError
from ansray.io.storage import discard_file, open_input, publish_file, temporary_path_for

_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
# Frames encoded per call, so the float64 copy made for rounding stays a few MiB.
_ENCODE_BLOCK_FRAMES = 2**18
# libsndfile logs a chunk whose declared size exceeds what the file holds as `data : 192000
# (should be 127985)` and then silently reads fewer frames.
_SHORT_CHUNK = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = {0, 0xFFFFFFFF}  # streaming writers leave the data size open
# libsndfile's log lines for an Ogg stream cut off at a page boundary, and inside a page.
_OGG_CUT_OFF = ("Last page lacks an end-of-stream bit", "Junk after the last page")


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a faithful writer needs: libsndfile's format and subtype names, rate, channels, frames."""

    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.sample_rate


class AudioDecodeError(LocatedError):
    """An input the job cannot use: the message names the URI and the reason."""


def audio_info(uri: str, storage_options: dict | None = None) -> AudioInfo:
    """Reads only the header of `uri`. Raises AudioDecodeError for an unusable file."""
    with _decoding(uri), open_input(uri, storage_options) as file, _open_sound(uri, file) as sound:
        return _info_of(sound)


def read_audio(
    uri: str,
    *,
    start: int | None = None,
    frames: int | None = None,
    storage_options: dict | None = None,
) -> tuple[np.ndarray, int, AudioInfo]:
    """Decodes `frames` frames from frame `start` (default: all of it) without a local copy.

    Returns (data [frames, channels] float32 in [-1, 1) for PCM, sample_rate, AudioInfo of the
    whole file). A window past the end is cut short like a slice. Raises AudioDecodeError for an
    unusable file, including one whose data ends before its header says it should.
    """
    start = 0 if start is None else start
    if start < 0 or (frames is not None and frames < 0):
        raise ValueError(f"window start={start}, frames={frames} must not be negative")
    with _decoding(uri), open_input(uri, storage_options) as file, _open_sound(uri, file) as sound:
        info = _info_of(sound)
        expected = max(0, min(info.frames - start, info.frames if frames is None else frames))
        if expected and start:
            sound.seek(start)
        data = sound.read(expected, dtype="float32", always_2d=True)
    if len(data) < expected:
        raise AudioDecodeError(
            uri, f"truncated data: got {len(data)} of {expected} frames from frame {start}"
        )
    if not np.isfinite(data).all():
        raise AudioDecodeError(uri, "samples contain NaN or Inf")
    return data, info.sample_rate, info


def write_audio(
    uri: str,
    data: np.ndarray,
    sample_rate: int,
    *,
    format: str,
    subtype: str,
    storage_options: dict | None = None,
) -> None:
    """Encodes `data` ([frames] or [frames, channels], float in [-1, 1]) and writes it atomically."""
    samples = _as_frames_by_channels(data)
    with AudioWriter(uri, sample_rate, samples.shape[1], format=format, subtype=subtype,
                     storage_options=storage_options) as writer:
        writer.write(samples)


class AudioWriter:
    """Encodes [frames, channels] float blocks as they come; `uri` appears whole when the writer closes
    without error, and is left untouched otherwise. Memory is one block, whatever the file's length.

    Samples are converted as `encode_audio` does (rounded and clipped to integer subtypes, never wrapped).
    """

    def __init__(self, uri: str, sample_rate: int, channels: int, *, format: str, subtype: str,
                 storage_options: dict | None = None):
        format, subtype = format.upper(), subtype.upper()
        if not sf.check_format(format, subtype):
            raise ValueError(f"libsndfile cannot write format {format} with subtype {subtype}")
        self.uri, self.subtype, self.storage_options = uri, subtype, storage_options
        self.frames = 0
        self._path = temporary_path_for(uri, storage_options)
        self._sound = sf.SoundFile(self._path, "w", samplerate=sample_rate, channels=channels, format=format,
                                   subtype=subtype)

    def write(self, block: np.ndarray) -> None:
        samples = _as_frames_by_channels(block)
        for begin in range(0, len(samples), _ENCODE_BLOCK_FRAMES):
            part = samples[begin : begin + _ENCODE_BLOCK_FRAMES]
            if not np.isfinite(part).all():
                raise ValueError(f"samples {self.frames}..{self.frames + len(part)} contain NaN or Inf")
            self._sound.write(_to_subtype_range(part, self.subtype))
            self.frames += len(part)

    def close(self) -> None:
        self._sound.close()
        publish_file(self._path, self.uri, self.storage_options)

    def discard(self) -> None:
        self._sound.close()
        discard_file(self._path)

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def encode_audio(data: np.ndarray, sample_rate: int, format: str, subtype: str) -> bytes:
    """The bytes of an audio file holding `data` ([frames] or [frames, channels] float).

    Integer subtypes are rounded and clipped to their range, never wrapped (libsndfile's own float to
    int conversion wraps a +1.5 peak to a negative sample). FLOAT and DOUBLE keep values beyond
    [-1, 1]; other codecs (Vorbis, Opus, u-law...) get them clipped to [-1, 1].
    """
    samples = _as_frames_by_channels(data)
    format, subtype = format.upper(), subtype.upper()
    if not sf.check_format(format, subtype):
        raise ValueError(f"libsndfile cannot write format {format} with subtype {subtype}")
    buffer = io.BytesIO()
    with sf.SoundFile(
        buffer,
        "w",
        samplerate=sample_rate,
        channels=samples.shape[1],
        format=format,
        subtype=subtype,
    ) as sound:
        for begin in range(0, len(samples), _ENCODE_BLOCK_FRAMES):
            block = samples[begin : begin + _ENCODE_BLOCK_FRAMES]
            if not np.isfinite(block).all():
                raise ValueError(f"samples {begin}..{begin + len(block)} contain NaN or Inf")
            sound.write(_to_subtype_range(block, subtype))
    return buffer.getvalue()


def downmix(data: np.ndarray) -> np.ndarray:
    """[frames, channels] or [frames] -> [frames, 1], the mean of the channels."""
    return _as_frames_by_channels(data).mean(axis=1, keepdims=True, dtype=np.float32)


def _to_subtype_range(block: np.ndarray, subtype: str) -> np.ndarray:
    """Float samples [frames, channels] -> what soundfile should be given for `subtype`."""
    bits = _PCM_BITS.get(subtype)
    if bits is None:
        return block if subtype in _FLOAT_SUBTYPES else np.clip(block, -1.0, 1.0)
    # Round to the subtype's own grid, so that reading gives back exactly the samples on it;
    # libsndfile keeps the high bits of the int16/int32 container and truncates the rest.
    scale = 2.0 ** (bits - 1)
    levels = np.clip(np.rint(block.astype(np.float64) * scale), -scale, scale - 1)
    container, container_bits = (np.int16, 16) if bits <= 16 else (np.int32, 32)
    return (levels * 2.0 ** (container_bits - bits)).astype(container)


def _as_frames_by_channels(data: np.ndarray) -> np.ndarray:
    samples = np.asarray(data)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise ValueError(f"audio must be [frames] or [frames, channels], got shape {samples.shape}")
    return samples


def _info_of(sound: sf.SoundFile) -> AudioInfo:
    return AudioInfo(sound.format, sound.subtype, sound.samplerate, sound.channels, sound.frames)


@contextlib.contextmanager
def _open_sound(uri: str, file) -> Iterator[sf.SoundFile]:
    """Opens a SoundFile over `file` and refuses files that are empty or shorter than declared."""
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    if size == 0:
        raise AudioDecodeError(uri, "empty file (0 bytes)")
    with sf.SoundFile(file) as sound:
        _check_not_truncated(uri, sound.extra_info)
        if sound.frames == 0:
            raise AudioDecodeError(uri, f"no audio frames ({sound.format} header with empty data)")
        yield sound


def _check_not_truncated(uri: str, header_log: str) -> None:
    for chunk, declared, present in _SHORT_CHUNK.findall(header_log):
        declared, present = int(declared), int(present)
        # A one-byte difference is a missing pad byte, not missing audio.
        if declared not in _UNKNOWN_LENGTH and declared > present + 1:
            raise AudioDecodeError(
                uri, f"truncated data: '{chunk}' chunk declares {declared} bytes, file holds {present}"
            )
    for message in _OGG_CUT_OFF:
        if message in header_log:
            raise AudioDecodeError(uri, f"truncated data (Ogg: {message})")


@contextlib.contextmanager
def _decoding(uri: str) -> Iterator[None]:
    """Turns every failure to open or decode `uri` into AudioDecodeError."""
    try:
        yield
    except AudioDecodeError:
        raise
    except FileNotFoundError as error:
        raise AudioDecodeError(uri, f"not found (missing, or removed after listing): {error}") from error
    except PermissionError as error:
        raise AudioDecodeError(uri, f"permission denied: {error}") from error
    except sf.LibsndfileError as error:
        raise AudioDecodeError(
            uri, f"not decodable (not audio, corrupt, or an unsupported codec): {error.error_string}"
        ) from error
    except (sf.SoundFileError, OSError) as error:
        raise AudioDecodeError(uri, f"unreadable: {error}") from error
