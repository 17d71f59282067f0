"""Specification of ansray.evaluation.transcripts: reading reference texts as `ID text` lines or NeMo
JSON lines, and fitting each to the evaluation item whose file paths end with its ID."""

import json

import pytest

from ansray.evaluation import EvaluationItem, TranscriptError, attach_transcripts, read_transcripts


def item(key: str, **files) -> EvaluationItem:
    return EvaluationItem(key, enhanced={"enhanced": f"/out/{key}"}, **files)


def test_id_text_lines_are_read_as_in_librispeech(tmp_path):
    path = tmp_path / "198-209.trans.txt"
    path.write_text("198-209-0000 MISSUS ALLEN SAID CATHERINE\n\n# a comment\n198-209-0001 THE NEXT MORNING\n")
    assert read_transcripts(str(path)) == {
        ("198-209-0000",): "MISSUS ALLEN SAID CATHERINE",
        ("198-209-0001",): "THE NEXT MORNING",
    }


def test_nemo_json_lines_give_their_text_by_audio_path(tmp_path):
    path = tmp_path / "manifest.jsonl"
    rows = [{"audio_filepath": "wavs/a/one.wav", "duration": 1.0, "text": "hello there"},
            {"audio_filepath": "wavs/b/two.flac", "duration": 2.0}]  # no text: not a transcript
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert read_transcripts(str(path)) == {("wavs", "a", "one"): "hello there"}


def test_one_id_with_two_texts_is_refused(tmp_path):
    path = tmp_path / "text"
    path.write_text("utt1 one text\nutt1 another text\n")
    with pytest.raises(TranscriptError, match="line 2: 'utt1' has two different transcripts"):
        read_transcripts(str(path))


def test_a_json_line_without_audio_filepath_is_refused(tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_text('{"text": "hello"}\n')
    with pytest.raises(TranscriptError, match="texts.jsonl line 1: expected JSON with audio_filepath and text"):
        read_transcripts(str(path))


def test_an_entry_fits_the_item_whose_file_path_ends_with_it():
    items = [item("198/209/198-209-0000.flac", noisy="s3://b/noisy/198/209/198-209-0000.wav"),
             item("x/one.wav", clean="/data/clean/x/one.wav"), item("y/one.wav")]
    entries = {("198-209-0000",): "missus allen", ("clean", "x", "one"): "one in x", ("y", "one"): "one in y"}
    texts = [found.text for found in attach_transcripts(items, [entries])]
    assert texts == ["missus allen", "one in x", "one in y"]


def test_the_longest_fitting_entry_wins_and_an_unfit_item_gets_none():
    items = [item("a/one.wav"), item("b/two.wav")]
    entries = {("one",): "short", ("a", "one"): "long"}
    assert [found.text for found in attach_transcripts(items, [entries])] == ["long", None]


def test_an_entry_that_fits_two_items_is_refused():
    with pytest.raises(TranscriptError, match="'one' fits both 'a/one.wav' and 'b/one.wav'"):
        attach_transcripts([item("a/one.wav"), item("b/one.wav")], [{("one",): "which one?"}])


def test_the_first_source_with_an_entry_decides():
    items = [item("one.wav"), item("two.wav")]
    given, from_manifest = {("one",): "given"}, {("one",): "manifest", ("two",): "manifest two"}
    assert [found.text for found in attach_transcripts(items, [given, from_manifest])] == ["given", "manifest two"]
