"""Word error rate of a transcript against a reference text, with `jiwer` (the `asr` extra), after the
usual normalisation of both: lower case, punctuation removed, words split on white space."""

from __future__ import annotations

from ansray.extras import require_package
from ansray.metrics.inputs import MetricUndefined, nan_when_undefined


def normalized_words(text: str) -> list[str]:
    """The words of `text`, lower-cased, without punctuation (so "Don't!" and "dont" match).
    Numbers are not spelled out: "18" and "eighteen" differ."""
    jiwer = _jiwer()
    return _normalization(jiwer)(text)[0] if text.strip() else []


@nan_when_undefined
def word_error_rate(hypothesis: str, reference: str) -> float:
    """(substitutions + deletions + insertions) / reference words of `hypothesis` against `reference`,
    in percent, after normalisation (see normalized_words). An empty hypothesis scores 100. NaN where
    the reference has no words."""
    if not normalized_words(reference):
        raise MetricUndefined("the reference text has no words")
    jiwer = _jiwer()
    normalization = _normalization(jiwer)
    return 100.0 * jiwer.wer(reference, hypothesis, reference_transform=normalization,
                             hypothesis_transform=normalization)


def _jiwer():
    return require_package("jiwer", "asr", needed_by="the word error rate")


def _normalization(jiwer):
    return jiwer.Compose([
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ])
