"""DNS Challenge noisy-speech mixing: activity detection, clip building and SNR mixing.

Follows the behaviour of microsoft/DNS-Challenge's synthesizer (Interspeech 2020 defaults, with the
ICASSP 2021 segmental mixer and reverberation as options). Pure numpy, so the synthesis job and
on-the-fly mixing in training share one implementation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

EPS = np.finfo(np.float64).eps
NORMALIZED_LEVEL = -25.0  # dBFS: DNS normalises both signals here before applying the SNR
REVERB_TARGETS = ("reverberant", "early", "dry")
EARLY_REFLECTIONS = 0.05  # seconds after the direct path kept by the "early" target


@dataclass(frozen=True)
class MixConfig:
    """Mixing settings, named as in the DNS Challenge `noisyspeech_synthesizer.cfg`.

    Defaults are the Interspeech 2020 edition, whose data the released FRCRN model was trained on:
    SNR 0..40 dB, no reverberation, global-RMS mixing. `MixConfig.icassp2021()` gives that edition.

    - SNR and level are drawn as integers with the upper bound exclusive, as DNS does. With
      `total_snrlevels` set, the SNR is instead drawn from `total_snrlevels` evenly spaced values
      from `snr_lower` to `snr_upper`, both included.
    - `percent_for_adding_reverb` keeps its DNS name but is a fraction in [0, 1].
    - `reverb_target`: "reverberant" is what the 2021 script writes as the clean target; "early"
      keeps the direct path and the first 50 ms of reflections; "dry" keeps only the direct path.
      The SNR always refers to the speech that is in the mixture, i.e. the reverberant one.
    - `segmental_snr` selects the 2021 mixer, which measures RMS only over windows where the noise
      is active.
    """

    sample_rate: int = 16000
    audio_length: float = 30.0
    silence_length: float = 0.2
    snr_lower: int = 0
    snr_upper: int = 40
    total_snrlevels: int | None = None
    target_level_lower: int = -35
    target_level_upper: int = -15
    clean_activity_threshold: float = 0.6
    noise_activity_threshold: float = 0.0
    segmental_snr: bool = False
    percent_for_adding_reverb: float = 0.0
    reverb_target: str = "reverberant"
    clipping_threshold: float = 0.99
    max_source_tries: int = 50

    def __post_init__(self):
        if self.total_snrlevels is None and self.snr_lower >= self.snr_upper:
            raise ValueError(
                f"snr_lower {self.snr_lower} must be below snr_upper {self.snr_upper} (upper is exclusive)"
            )
        if self.total_snrlevels is not None and self.total_snrlevels < 1:
            raise ValueError(f"total_snrlevels must be at least 1, got {self.total_snrlevels}")
        if self.target_level_lower >= self.target_level_upper:
            raise ValueError(
                f"target_level_lower {self.target_level_lower} must be below target_level_upper "
                f"{self.target_level_upper} (upper is exclusive)"
            )
        if self.target_level_upper > 0:
            raise ValueError(f"target_level_upper is in dBFS and must be <= 0, got {self.target_level_upper}")
        if not 0.0 <= self.percent_for_adding_reverb <= 1.0:
            raise ValueError(f"percent_for_adding_reverb is a fraction in [0, 1], got {self.percent_for_adding_reverb}")
        if self.reverb_target not in REVERB_TARGETS:
            raise ValueError(f"reverb_target must be one of {REVERB_TARGETS}, got {self.reverb_target!r}")
        if not 0.0 < self.clipping_threshold <= 1.0:
            raise ValueError(f"clipping_threshold must be in (0, 1], got {self.clipping_threshold}")
        if self.audio_length <= 0 or self.silence_length < 0:
            raise ValueError(
                f"audio_length must be > 0 and silence_length >= 0, got {self.audio_length}, {self.silence_length}"
            )

    @classmethod
    def icassp2021(cls, **overrides) -> "MixConfig":
        """The ICASSP 2021 edition: SNR -5..20 dB, segmental mixer, reverberation on every clip."""
        values = dict(snr_lower=-5, snr_upper=20, segmental_snr=True, percent_for_adding_reverb=1.0)
        return cls(**{**values, **overrides})

    @property
    def clip_frames(self) -> int:
        return int(round(self.audio_length * self.sample_rate))

    @property
    def silence_frames(self) -> int:
        return int(round(self.silence_length * self.sample_rate))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Levels and activity


def rms(x: np.ndarray) -> float:
    """Root mean square of `x` [T]."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def level_db(x: np.ndarray) -> float:
    """RMS level of `x` [T] in dBFS."""
    return 20.0 * np.log10(rms(x) + EPS)


def normalize_rms(x: np.ndarray, level: float = NORMALIZED_LEVEL) -> np.ndarray:
    """`x` [T] scaled to an RMS of `level` dBFS (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return x * (10.0 ** (level / 20.0) / (rms(x) + EPS))


def is_clipped(x: np.ndarray, threshold: float = 0.99) -> bool:
    return bool(np.any(np.abs(x) > threshold))


def active_fraction(x: np.ndarray, sample_rate: int = 16000) -> float:
    """Fraction of 50 ms frames of `x` [T] that the DNS activity detector marks as active.

    Constants are those of the DNS script: the frame "energy" is 20·log10 of the frame's sum of
    squares after normalising to -25 dBFS, mapped through a sigmoid with slope 0.2 per dB and offset
    -1. The smoothing blends each frame's probability with the previous frame's raw probability
    (attack 0.8 when rising, release 0.05 when falling), not with the previous smoothed value.
    A frame is active when the smoothed probability exceeds 0.13. The last partial frame counts.
    """
    x = normalize_rms(x)
    frame = int(sample_rate * 0.05)
    frames = -(-x.size // frame)
    if frames == 0:
        return 0.0
    padded = np.zeros(frames * frame)
    padded[: x.size] = x
    energy_db = 20.0 * np.log10(np.sum(padded.reshape(frames, frame) ** 2, axis=1) + EPS)
    prob = 1.0 / (1.0 + np.exp(-(-1.0 + 0.2 * energy_db)))
    previous = np.concatenate([[0.0], prob[:-1]])
    smoothed = np.where(prob > previous, 0.8 * prob + 0.2 * previous, 0.05 * prob + 0.95 * previous)
    return float(np.mean(smoothed > 0.13))


def active_rms(clean: np.ndarray, noise: np.ndarray, sample_rate: int = 16000) -> tuple[float, float]:
    """RMS of `clean` and `noise` [T] over the 100 ms windows where `noise` is active (2021 mixer).

    As in the DNS script, a window is active when 20·log10 of the noise's mean square exceeds
    -50, i.e. its RMS is above -25 dBFS; the test is made on peak-normalised noise, so it does not
    depend on the noise's scale. Without any active window, or with silent speech in all of them,
    the global RMS is used (the DNS script would divide by its epsilon instead).
    """
    window = int(sample_rate * 0.1)
    noise = np.asarray(noise, dtype=np.float64)
    clean = np.asarray(clean, dtype=np.float64)
    windows = -(-noise.size // window)
    padded = np.zeros(windows * window)
    padded[: noise.size] = noise / (np.max(np.abs(noise), initial=0.0) + EPS)
    counts = np.full(windows, window)
    if windows:
        counts[-1] = noise.size - (windows - 1) * window
    mean_square = np.sum(padded.reshape(windows, window) ** 2, axis=1) / counts
    active = np.repeat(20.0 * np.log10(mean_square + EPS) > -50.0, window)[: noise.size]
    if not active.any() or not np.any(clean[active]):
        return rms(clean), rms(noise)
    return rms(clean[active]), rms(noise[active])


def measure_snr(clean: np.ndarray, noise: np.ndarray, cfg: MixConfig) -> float:
    """SNR in dB between `clean` and `noise` [T], measured the way `mix` sets it under `cfg`."""
    if cfg.segmental_snr:
        clean_rms, noise_rms = active_rms(clean, noise, cfg.sample_rate)
    else:
        clean_rms, noise_rms = rms(clean), rms(noise)
    return 20.0 * np.log10((clean_rms + EPS) / (noise_rms + EPS))


# ---------------------------------------------------------------------------------------------
# Random draws


def mixture_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of mixture `index`, derived only from `seed` and `index`.

    Equal to `SeedSequence(seed).spawn(n)[index]` for any n > index, so mixtures can be made in any
    order, on any number of workers.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def draw_snr(rng: np.random.Generator, cfg: MixConfig) -> float:
    if cfg.total_snrlevels is None:
        return float(rng.integers(cfg.snr_lower, cfg.snr_upper))
    grid = np.linspace(cfg.snr_lower, cfg.snr_upper, cfg.total_snrlevels)
    return float(grid[rng.integers(cfg.total_snrlevels)])


def draw_target_level(rng: np.random.Generator, cfg: MixConfig) -> int:
    return int(rng.integers(cfg.target_level_lower, cfg.target_level_upper))


def draw_reverb(rng: np.random.Generator, cfg: MixConfig, num_rirs: int) -> int | None:
    """Which RIR (index into the RIR list) reverberates this mixture, or None for a dry mixture.

    Always consumes one draw for the decision, so the stream stays aligned with or without RIRs.
    """
    use = rng.random() < cfg.percent_for_adding_reverb
    if not use or num_rirs == 0:
        return None
    return int(rng.integers(num_rirs))


# ---------------------------------------------------------------------------------------------
# Building the clean and noise signals


class Piece(NamedTuple):
    """A window of a source used in a clip, in frames at the mixing sample rate."""

    source: int
    start: int
    frames: int


@dataclass
class Clip:
    """A clean or noise signal built to length from source pieces.

    `audio` [T] float32; `pieces` in the order they appear, each followed by the silence gap;
    `skipped` holds (source index, reason) for each source that was tried and not used.
    """

    audio: np.ndarray
    pieces: list[Piece] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


class ClipBuildError(RuntimeError):
    """No clip could be built: too many sources in a row were unusable."""

    def __init__(self, kind: str, skipped: list[tuple[int, str]]):
        reasons = ", ".join(f"source {s}: {r}" for s, r in skipped[-5:])
        super().__init__(f"could not build a {kind} clip: {len(skipped)} sources skipped (last: {reasons})")
        self.skipped = skipped


def build_clip(
    source_frames: Sequence[int],
    read: Callable[[int, int, int], np.ndarray],
    rng: np.random.Generator,
    cfg: MixConfig,
    *,
    activity_threshold: float,
    length: int | None = None,
    unreadable: tuple[type[BaseException], ...] = (),
    kind: str = "clean",
) -> Clip:
    """Concatenates randomly chosen source pieces, separated by silence, to `length` frames.

    - `source_frames[i]` is the length of source i at `cfg.sample_rate`; sources are drawn with
      replacement from the mixture's `rng`, so a single noise file is looped.
    - `read(source, start, frames)` returns that window [frames] as float at `cfg.sample_rate`;
      errors of the types in `unreadable` mark the source as skipped instead of failing.
    - A source longer than the remaining length is cropped at a random offset (DNS training sets).
    - A piece is skipped if it clips (|x| > `cfg.clipping_threshold`), is silent, or its
      `active_fraction` is below `activity_threshold` (0 disables the check). DNS tests the whole
      assembled clip and starts over; testing each piece skips the same silent sources without
      discarding the good pieces already chosen.
    - After `cfg.max_source_tries` skipped sources, raises `ClipBuildError`.
    """
    length = cfg.clip_frames if length is None else length
    total = len(source_frames)
    if total == 0:
        raise ClipBuildError(kind, [])
    audio = np.zeros(length, dtype=np.float32)
    clip = Clip(audio)
    filled = 0
    while filled < length:
        if len(clip.skipped) >= cfg.max_source_tries:
            raise ClipBuildError(kind, clip.skipped)
        source = int(rng.integers(total))
        frames = int(source_frames[source])
        remaining = length - filled
        start = 0
        if frames > remaining:
            start = int(rng.integers(0, frames - remaining))
            frames = remaining
        if frames <= 0:
            clip.skipped.append((source, "empty"))
            continue
        try:
            piece = np.asarray(read(source, start, frames), dtype=np.float64)[:frames]
        except unreadable as err:
            clip.skipped.append((source, f"unreadable: {err}"))
            continue
        reason = _unusable_reason(piece, cfg, activity_threshold)
        if reason:
            clip.skipped.append((source, reason))
            continue
        audio[filled : filled + piece.size] = piece
        clip.pieces.append(Piece(source, start, piece.size))
        filled += piece.size + cfg.silence_frames
    return clip


def _unusable_reason(piece: np.ndarray, cfg: MixConfig, activity_threshold: float) -> str | None:
    if piece.size == 0 or not np.any(piece):
        return "silent"
    if is_clipped(piece, cfg.clipping_threshold):
        return "clipped"
    if activity_threshold > 0 and active_fraction(piece, cfg.sample_rate) < activity_threshold:
        return "inactive"
    return None


# ---------------------------------------------------------------------------------------------
# Reverberation and mixing


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """`x` [T] convolved with `h` [K], truncated to T samples (FFT convolution, float64)."""
    x = np.asarray(x, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    n = x.size + h.size - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: x.size]


def reverberate(clean: np.ndarray, rir: np.ndarray, cfg: MixConfig) -> tuple[np.ndarray, np.ndarray]:
    """The reverberant speech [T] that goes into the mixture, and the target [T] per `cfg.reverb_target`.

    The early and dry targets keep the direct path's delay and gain, so they stay aligned with and
    on the same scale as the reverberant speech.
    """
    rir = np.asarray(rir, dtype=np.float64)
    speech = convolve(clean, rir)
    if cfg.reverb_target == "reverberant":
        return speech, speech
    direct = int(np.argmax(np.abs(rir)))
    if cfg.reverb_target == "early":
        kept = rir[: direct + int(EARLY_REFLECTIONS * cfg.sample_rate) + 1]
    else:
        kept = np.zeros(direct + 1)
        kept[direct] = rir[direct]
    return speech, convolve(clean, kept)


@dataclass(frozen=True)
class MixMeta:
    """What one mixture was made with.

    `snr` (dB) and `target_level` (dBFS) are the drawn values; `level` is the noisy signal's
    realised RMS level, below `target_level` when `clipped`. `clean_gain` and `noise_gain` map the
    input clean (after reverberation) and noise arrays to the returned ones.
    """

    snr: float
    target_level: int
    level: float
    clean_gain: float
    noise_gain: float
    clipped: bool
    reverb: bool
    reverb_target: str | None


def mix(
    clean: np.ndarray,
    noise: np.ndarray,
    rng: np.random.Generator,
    cfg: MixConfig,
    rir: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, MixMeta]:
    """Mixes `clean` and `noise` [T] at a random SNR and level, the way the DNS synthesizer does.

    Returns `(noisy, clean_target, noise_scaled, meta)`, each [T] float32.
    1. With `rir` [K], the clean speech is reverberated first (choose it with `draw_reverb`).
    2. Speech and noise are peak-normalised, then normalised to -25 dBFS RMS (global RMS, or over
       active noise windows with `cfg.segmental_snr`), and the noise is scaled by 10^(-snr/20).
    3. The sum is scaled to the drawn target level; clean and noise get the same gain.
    4. If any of the signals would exceed `cfg.clipping_threshold`, all are scaled together so the
       largest peak lies just under it. DNS instead retries a mixture where clean or noise still
       clips after that; scaling on the joint peak makes every draw usable.
    Without reverberation, or with the reverberant target, `noisy == clean_target + noise_scaled`.
    """
    if len(clean) != len(noise):
        raise ValueError(f"clean and noise must have the same length, got {len(clean)} and {len(noise)}")
    if not np.any(clean) or not np.any(noise):
        raise ValueError("clean and noise must not be silent")
    snr = draw_snr(rng, cfg)
    target_level = draw_target_level(rng, cfg)

    speech = target = np.asarray(clean, dtype=np.float64)
    if rir is not None:
        speech, target = reverberate(speech, rir, cfg)
    noise = np.asarray(noise, dtype=np.float64)

    # DNS peak-normalises both signals before normalising their RMS to -25 dBFS; the product of the
    # two gains is the RMS one alone, and active_rms makes its window test on peak-normalised noise.
    if cfg.segmental_snr:
        speech_rms, noise_rms = active_rms(speech, noise, cfg.sample_rate)
    else:
        speech_rms, noise_rms = rms(speech), rms(noise)
    normalized = 10.0 ** (NORMALIZED_LEVEL / 20.0)
    clean_gain = normalized / speech_rms
    noise_gain = normalized / noise_rms * 10.0 ** (-snr / 20.0)

    noisy = speech * clean_gain + noise * noise_gain
    level_gain = 10.0 ** (target_level / 20.0) / rms(noisy)
    peak = level_gain * max(
        np.max(np.abs(noisy)),
        np.max(np.abs(target)) * clean_gain,
        np.max(np.abs(speech)) * clean_gain,
        np.max(np.abs(noise)) * noise_gain,
    )
    clipped = bool(peak > cfg.clipping_threshold)
    if clipped:
        # Just under the threshold, so that float32 and 16-bit rounding keep it below.
        level_gain *= (cfg.clipping_threshold - 1e-4) / peak
    clean_gain *= level_gain
    noise_gain *= level_gain
    noisy *= level_gain
    noise_out = noise * noise_gain
    meta = MixMeta(
        snr=snr,
        target_level=target_level,
        level=level_db(noisy),
        clean_gain=float(clean_gain),
        noise_gain=float(noise_gain),
        clipped=clipped,
        reverb=rir is not None,
        reverb_target=cfg.reverb_target if rir is not None else None,
    )
    return noisy.astype(np.float32), (target * clean_gain).astype(np.float32), noise_out.astype(np.float32), meta
