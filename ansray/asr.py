"""Speech recognisers for word error rates: PocketSphinx with the US English model its wheel bundles
(the `asr` extra), or any recogniser plugged in by a Python path to a callable that takes 16 kHz audio
and returns its text.

The plug-in interface: `module.path:name` names either
  - a recogniser: a callable of one argument, `audio` (float32 numpy [T], mono, 16 kHz, about
    [-1, 1]), that returns the transcript as a str; or
  - a factory that returns such a recogniser, called once per process (once per Ray actor) with the
    options as keyword arguments: load a model there. A callable is taken as a factory when options
    are given, or when it has no required argument.
The module must be importable where the recogniser runs (on every Ray node)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable

import numpy as np

from ansray.extras import extra_hint, require_package
from ansray.io.resample import resample

ASR_SAMPLE_RATE = 16000
POCKETSPHINX = "pocketsphinx"

Recognizer = Callable[[np.ndarray], str]


class RecognizerError(ValueError):
    """A recogniser spec that names nothing usable, or a recogniser that does not return text."""


def resolve_recognizer(spec: str) -> Callable:
    """What `spec` names, without calling it: the PocketSphinx class for "pocketsphinx" (checking that
    it is installed), else the attribute `name` of module `module.path` for "module.path:name".
    Raises RecognizerError."""
    if spec == POCKETSPHINX:
        if importlib.util.find_spec("pocketsphinx") is None:
            raise RecognizerError(f"recogniser {spec!r} needs the package 'pocketsphinx'; {extra_hint('asr')}")
        return PocketSphinx
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise RecognizerError(f"recogniser {spec!r}: expected {POCKETSPHINX!r} or a path module.path:name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RecognizerError(f"recogniser {spec!r}: cannot import {module_name!r}: {error}") from error
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise RecognizerError(f"recogniser {spec!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise RecognizerError(f"recogniser {spec!r}: {attribute!r} is not callable")
    return target


def load_recognizer(spec: str, options: dict | None = None) -> Recognizer:
    """The recogniser `spec` names (see the module docstring), built once: a factory is called with
    `options` as keyword arguments, a recogniser is returned as it is."""
    target = resolve_recognizer(spec)
    options = dict(options or {})
    if not options and _required_arguments(target) > 0:
        return target
    try:
        return target(**options)
    except TypeError as error:
        raise RecognizerError(f"recogniser {spec!r} as a factory of options {sorted(options)}: {error}") from error


def transcribe(recognizer: Recognizer, audio: np.ndarray, sample_rate: int) -> str:
    """The recogniser's transcript of a mono signal `audio` [T] at `sample_rate`, given to it as
    float32 at 16 kHz. Raises RecognizerError when it returns something other than a str."""
    text = recognizer(np.ascontiguousarray(resample(audio, sample_rate, ASR_SAMPLE_RATE)))
    if not isinstance(text, str):
        raise RecognizerError(f"the recogniser returned {type(text).__name__}, not the transcript as a str")
    return text


def _required_arguments(target: Callable) -> int:
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: take it as a recogniser
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty)


class PocketSphinx:
    """PocketSphinx 5 with its bundled US English acoustic model, language model and dictionary.

    The audio is cut into utterances by PocketSphinx's own voice activity detector (its Endpointer), and
    each is decoded on its own, so that an hour-long file is never one utterance; the transcripts are
    joined with spaces. `decoder_options` go to pocketsphinx.Decoder (say, `hmm`, `lm`, `dict` for
    another model)."""

    def __init__(self, **decoder_options):
        pocketsphinx = require_package("pocketsphinx", "asr", needed_by="the PocketSphinx recogniser")
        self._pocketsphinx = pocketsphinx
        self.decoder = pocketsphinx.Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL", **decoder_options)

    def __call__(self, audio: np.ndarray) -> str:
        pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return " ".join(filter(None, (self._decode(utterance) for utterance in self._utterances(pcm))))

    def _utterances(self, pcm: bytes):
        """The stretches of speech in 16-bit PCM `pcm`, as PCM bytes."""
        endpointer = self._pocketsphinx.Endpointer(sample_rate=ASR_SAMPLE_RATE)
        step = endpointer.frame_bytes
        pieces = []
        for start in range(0, len(pcm), step):
            frame = pcm[start : start + step]
            # The last frame goes to end_stream, which closes an utterance still open at the end.
            speech = endpointer.end_stream(frame) if start + step >= len(pcm) else endpointer.process(frame)
            if speech is not None:
                pieces.append(speech)
                if not endpointer.in_speech:
                    yield b"".join(pieces)
                    pieces = []

    def _decode(self, utterance: bytes) -> str:
        self.decoder.start_utt()
        self.decoder.process_raw(utterance, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""
