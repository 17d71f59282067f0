"""DNSMOS, the non-intrusive MOS predictor of the DNS Challenge: P.835 SIG/BAK/OVRL (Reddy, Gopal and
Cutler, ICASSP 2022) and P.808 MOS (ICASSP 2021), run with onnxruntime on the ONNX models that ship in
the `speechmos` package, following the challenge's reference script DNSMOS/dnsmos_local.py."""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ansray.io.resample import resample
from ansray.metrics.inputs import (
    EVAL_EXTRA_HINT,
    METRIC_SAMPLE_RATE,
    MetricUndefined,
    as_signal,
    require_eval_package,
    require_sound,
)

WINDOW_SAMPLES = 144160
"""The models rate 9.01 s windows at 16 kHz, one starting at each whole second."""
HOP_SAMPLES = METRIC_SAMPLE_RATE

# The P.808 model takes a log-mel spectrogram of the window less its last 10 ms: 900 frames of 120 bands
# from a 321-point STFT with a 160-sample hop, as librosa >= 0.9 computes it (zero-padded, centred).
MEL_BANDS = 120
FFT_SIZE = 321
FRAME_HOP = 160
MEL_FRAMES = 900

# Quadratics that map the P.835 model's raw outputs to MOS, from the reference script
# (the non-personalised model), highest power first.
SIG_POLYNOMIAL = (-0.08397278, 1.22083953, 0.0052439)
BAK_POLYNOMIAL = (-0.13166888, 1.60915514, -0.39604546)
OVRL_POLYNOMIAL = (-0.06766283, 1.11546468, 0.04602535)


class DNSMOSModelError(RuntimeError):
    """The DNSMOS ONNX models are missing or do not take the input this module prepares."""


@dataclass(frozen=True)
class DNSMOSScores:
    """DNSMOS scores of one clip, each a MOS from 1 to 5; all NaN with a `reason` where undefined."""

    sig: float
    bak: float
    ovrl: float
    p808: float
    reason: str | None = None

    @classmethod
    def undefined(cls, reason: str) -> DNSMOSScores:
        return cls(math.nan, math.nan, math.nan, math.nan, reason)


def bundled_model_dir() -> Path:
    """The folder of DNSMOS ONNX models inside the installed `speechmos` package (its Python modules
    are not imported: they need librosa, which ansray does not)."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"DNSMOS needs the package 'speechmos'; {EVAL_EXTRA_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models"


class DNSMOS:
    """DNSMOS scorer holding its two onnxruntime sessions: build one per process (one per Ray actor) and
    call it for each clip.

    `num_threads` caps onnxruntime's threads per session, so that several Ray workers on one machine do
    not oversubscribe its cores."""

    def __init__(self, model_dir: Path | str | None = None, num_threads: int = 1):
        onnxruntime = require_eval_package("onnxruntime")
        model_dir = Path(model_dir) if model_dir is not None else bundled_model_dir()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.model_dir = model_dir
        self._p835 = _load_session(onnxruntime, model_dir / "sig_bak_ovr.onnx", options, [WINDOW_SAMPLES])
        self._p808 = _load_session(onnxruntime, model_dir / "model_v8.onnx", options, [MEL_FRAMES, MEL_BANDS])
        self._mel_filterbank = mel_filterbank(METRIC_SAMPLE_RATE, FFT_SIZE, MEL_BANDS)

    def __call__(self, audio: np.ndarray, sample_rate: int, max_windows: int | None = None) -> DNSMOSScores:
        """Scores a mono clip `audio` [T] at `sample_rate` (resampled to 16 kHz first).

        As in the reference, a clip shorter than 9.01 s is repeated until it is long enough, and the
        scores are means over the windows. NaN with a reason for an empty or silent clip.
        `max_windows` bounds the cost on long recordings (each window is a model run, one per second of
        audio): beyond it, that many windows spread evenly over the clip are scored."""
        try:
            audio = resample(as_signal(audio, "audio"), sample_rate, METRIC_SAMPLE_RATE)
            require_sound(audio, "audio")
        except MetricUndefined as undefined:
            return DNSMOSScores.undefined(str(undefined))
        windows = dnsmos_windows(audio)
        if max_windows is not None and len(windows) > max_windows:
            windows = windows[np.linspace(0, len(windows) - 1, max_windows).round().astype(int)]
        return self.score_windows(windows)

    def score_windows(self, windows: np.ndarray) -> DNSMOSScores:
        """Scores 16 kHz windows [N, WINDOW_SAMPLES] and averages over them."""
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"DNSMOS windows must be [N, {WINDOW_SAMPLES}] at 16 kHz; got {windows.shape}")
        # One window per run: batching the P.835 model measured twice as slow on CPU.
        raw_p835, p808 = [], []
        for window in windows:
            raw_p835.append(self._p835.run(None, {"input_1": window[None].astype(np.float32)})[0][0])
            mel = self.log_mel(window[:-FRAME_HOP])
            p808.append(self._p808.run(None, {"input_1": mel[None].astype(np.float32)})[0][0, 0])
        raw_sig, raw_bak, raw_ovrl = np.array(raw_p835).T
        return DNSMOSScores(
            sig=float(np.mean(np.polyval(SIG_POLYNOMIAL, raw_sig))),
            bak=float(np.mean(np.polyval(BAK_POLYNOMIAL, raw_bak))),
            ovrl=float(np.mean(np.polyval(OVRL_POLYNOMIAL, raw_ovrl))),
            p808=float(np.mean(p808)),
        )

    def log_mel(self, audio: np.ndarray) -> np.ndarray:
        """The P.808 model's input for 16 kHz audio [T]: log-mel power [frames, MEL_BANDS], in dB relative
        to its loudest bin, floored 80 dB below it, then mapped by (dB + 40) / 40."""
        padded = np.pad(audio, FFT_SIZE // 2)
        frames = np.lib.stride_tricks.sliding_window_view(padded, FFT_SIZE)[::FRAME_HOP]
        power = np.square(np.abs(np.fft.rfft(frames * periodic_hann(FFT_SIZE), axis=-1)))
        mel_power = power @ self._mel_filterbank.T
        decibels = 10.0 * np.log10(np.maximum(mel_power, 1e-10))
        decibels -= decibels.max()
        decibels = np.maximum(decibels, -80.0)
        return (decibels + 40.0) / 40.0


def _load_session(onnxruntime, path: Path, options, feature_shape: list[int]):
    if not path.is_file():
        raise DNSMOSModelError(f"{path}: DNSMOS model not found; the eval extra's speechmos package ships it")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    expected_shape = session.get_inputs()[0].shape[1:]
    if list(expected_shape) != feature_shape:
        raise DNSMOSModelError(
            f"{path}: the model takes input {expected_shape}, not the {feature_shape} prepared here"
        )
    return session


def dnsmos_windows(audio: np.ndarray) -> np.ndarray:
    """Cuts 16 kHz audio [T] into the reference's windows [N, WINDOW_SAMPLES], a read-only view.

    A clip under 9.01 s is doubled until it is long enough. There are as many windows as the
    reference's `int(floor(len / fs) - 9.01) + 1`, one starting at each whole second, so up to the last
    two seconds may go unscored, as there. Start and end are counted in samples here: the reference's
    float `int((idx + 9.01) * fs)` falls one sample short for some windows (idx 7-23, 119-122) and then
    skips them, so clips longer than 17 s may average a few more windows here than there."""
    while len(audio) < WINDOW_SAMPLES:
        audio = np.concatenate([audio, audio])
    num_windows = max(len(audio) // METRIC_SAMPLE_RATE - 9, 1)
    # A strided view, not a copy: an hour of audio has 3591 windows (4 GB if stacked).
    return np.lib.stride_tricks.sliding_window_view(audio, WINDOW_SAMPLES)[::HOP_SAMPLES][:num_windows]


@functools.lru_cache(maxsize=None)
def periodic_hann(length: int) -> np.ndarray:
    """The periodic Hann window [length] that librosa's STFT uses."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def mel_filterbank(sample_rate: int, fft_size: int, bands: int) -> np.ndarray:
    """Slaney-style mel filterbank [bands, fft_size // 2 + 1], area-normalised, from 0 Hz to Nyquist:
    librosa.filters.mel's defaults, which the P.808 model was trained with."""
    fft_frequencies = np.fft.rfftfreq(fft_size, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), bands + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_frequencies[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    # librosa builds the bank in float32; keep its rounding so the features match the model's training.
    return weights.astype(np.float32).astype(np.float64)


# The Slaney mel scale: linear at 200/3 Hz per mel below 1 kHz, logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _LINEAR_HZ_PER_MEL
    logarithmic = _BREAK_MEL + np.log(np.maximum(hz, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz >= _BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _LINEAR_HZ_PER_MEL
    logarithmic = _BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _BREAK_MEL) - _BREAK_MEL))
    return np.where(mel >= _BREAK_MEL, logarithmic, linear)


@functools.lru_cache(maxsize=1)
def process_dnsmos() -> DNSMOS:
    """This process's shared DNSMOS scorer, built on first use, for callers that hold none of their own."""
    return DNSMOS()
