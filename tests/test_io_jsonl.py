"""The one JSON Lines reader: tolerant of a torn tail where this project appends, strict and precise
where a user wrote the manifest."""

import logging

import pytest

from ansray.io import JsonLinesError, read_jsonl
from ansray.io.jsonl import numbered_lines, parse_row


def test_a_torn_last_line_is_skipped_with_a_warning_naming_the_line(tmp_path, caplog):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3, "b"')
    with caplog.at_level(logging.WARNING):
        rows = read_jsonl(str(path))
    assert rows == [(1, {"a": 1}), (3, {"a": 2})]
    assert "manifest.jsonl line 4: skipping a torn or corrupt line" in caplog.text


def test_strict_reading_names_the_file_the_line_and_the_missing_field(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"input_filepath": "n.wav", "target_filepath": "c.wav"}\n{"input_filepath": "n2.wav"}\n')
    with pytest.raises(JsonLinesError, match=r"train\.jsonl line 2: expected JSON with input_filepath and "
                                             r"target_filepath \(no target_filepath\)"):
        read_jsonl(str(path), required=("input_filepath", "target_filepath"), strict=True)


@pytest.mark.parametrize("line, reason", [("[1, 2]", "a JSON list, not an object"), ("{'a': 1}", "not JSON")])
def test_a_row_must_be_a_json_object(line, reason):
    with pytest.raises(ValueError, match=reason):
        parse_row(line)


def test_comments_are_blank_only_where_the_format_allows_them():
    text = "# header\n  a  \n\n#b\n"
    assert list(numbered_lines(text, comments=True)) == [(2, "a")]
    assert list(numbered_lines(text)) == [(1, "# header"), (2, "a"), (4, "#b")]


def test_a_missing_manifest_has_no_rows_only_when_allowed(tmp_path):
    assert read_jsonl(str(tmp_path / "none.jsonl"), missing_ok=True) == []
    with pytest.raises(FileNotFoundError):
        read_jsonl(str(tmp_path / "none.jsonl"))

