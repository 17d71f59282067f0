"""Specification of ansray.asr and the word error rate: the plug-in interface (a recogniser, or a
factory of one, named by a Python path, given float32 mono audio at 16 kHz), PocketSphinx on real
speech, and WER's normalisation."""

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

import fake_recognizer
from ansray.asr import ASR_SAMPLE_RATE, RecognizerError, load_recognizer, resolve_recognizer, transcribe
from ansray.metrics import normalized_words, word_error_rate

SPEECH_CLIP = Path(__file__).parent / "fixtures" / "speech" / "198-209-0000.ogg"


@pytest.fixture(scope="module")
def speech():
    audio, rate = soundfile.read(SPEECH_CLIP, dtype="float32")
    assert rate == ASR_SAMPLE_RATE
    return audio


@pytest.fixture(scope="module")
def pocketsphinx():
    return load_recognizer("pocketsphinx")


def test_a_function_of_the_audio_is_the_recogniser_itself():
    assert load_recognizer("fake_recognizer:loudness_words") is fake_recognizer.loudness_words
    with pytest.raises(RecognizerError, match="as a factory of options \\['log_dir'\\]: .*unexpected keyword"):
        load_recognizer("fake_recognizer:loudness_words", {"log_dir": "x"})


def test_a_callable_given_options_is_a_factory_called_with_them(tmp_path):
    recognizer = load_recognizer("fake_recognizer:make_recognizer", {"log_dir": str(tmp_path)})
    assert recognizer(np.zeros(3200, dtype=np.float32)) == "soft soft"
    [log] = tmp_path.iterdir()
    assert log.read_text() == "3200\n"


def test_a_callable_without_required_arguments_is_a_factory():
    assert load_recognizer("fake_recognizer:make_default_recognizer") is fake_recognizer.loudness_words


@pytest.mark.parametrize("spec, reason", [
    ("fake_recognizer", "expected 'pocketsphinx' or a path module.path:name"),
    ("no_such_module_here:make", "cannot import 'no_such_module_here'"),
    ("fake_recognizer:missing", "has no attribute 'missing'"),
    ("fake_recognizer:BLOCK", "'BLOCK' is not callable"),
])
def test_a_spec_that_names_no_recogniser_is_refused_with_the_reason(spec, reason):
    with pytest.raises(RecognizerError, match=reason):
        resolve_recognizer(spec)


def test_the_recogniser_gets_float32_mono_audio_at_16_khz():
    seconds = 1.5
    audio = np.full(int(seconds * 44100), 0.5, dtype=np.float64)
    text = transcribe(fake_recognizer.loudness_words, audio, 44100)
    assert text.split() == ["loud"] * int(seconds * 10)  # one word per 100 ms at 16 kHz


def test_a_recogniser_that_returns_no_str_is_refused():
    with pytest.raises(RecognizerError, match="returned list, not the transcript as a str"):
        transcribe(fake_recognizer.not_text, np.zeros(1600, dtype=np.float32), ASR_SAMPLE_RATE)


def test_pocketsphinx_transcribes_real_speech_the_same_way_each_time(pocketsphinx, speech):
    clip = speech[: 4 * ASR_SAMPLE_RATE]
    text = transcribe(pocketsphinx, clip, ASR_SAMPLE_RATE)
    assert len(text.split()) >= 8 and text == text.lower(), text
    assert transcribe(pocketsphinx, clip, ASR_SAMPLE_RATE) == text
    assert word_error_rate(text, text) == 0.0


def test_pocketsphinx_keeps_speech_that_runs_to_the_end_of_the_audio(pocketsphinx, speech):
    # 4.8 s is a whole number of the endpointer's 30 ms frames, and speech runs on past it: an utterance
    # still open at the end must be decoded, not dropped.
    assert (4800 * ASR_SAMPLE_RATE // 1000) % 480 == 0
    assert len(transcribe(pocketsphinx, speech[: 48 * ASR_SAMPLE_RATE // 10], ASR_SAMPLE_RATE).split()) >= 8


def test_pocketsphinx_hears_nothing_in_silence(pocketsphinx):
    assert transcribe(pocketsphinx, np.zeros(2 * ASR_SAMPLE_RATE, dtype=np.float32), ASR_SAMPLE_RATE) == ""


def test_wer_ignores_case_and_punctuation():
    assert normalized_words("Mrs. Allen, don't STOP!") == ["mrs", "allen", "dont", "stop"]
    assert word_error_rate("mrs allen dont stop", "Mrs. Allen, don't STOP!") == 0.0


def test_wer_counts_substitutions_deletions_and_insertions_in_percent():
    reference = "the next morning and again"
    assert word_error_rate("the next evening and again", reference) == pytest.approx(20.0)
    assert word_error_rate("the next morning", reference) == pytest.approx(40.0)
    assert word_error_rate("oh the next morning and again then", reference) == pytest.approx(40.0)
    assert word_error_rate("", reference) == 100.0


def test_wer_is_undefined_without_reference_words():
    assert math.isnan(word_error_rate("anything", " ... "))
