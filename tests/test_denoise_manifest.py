"""Specification of the denoise manifest: one row type, appends that survive kills and full disks, and a
compaction that never loses the original."""

import builtins
import errno
import json

import pytest

from ansray.denoise import manifest as manifest_module
from ansray.denoise.manifest import ManifestRow, ManifestWriteError, ManifestWriter, read_manifest_rows


def ok_row(name: str, **scores) -> ManifestRow:
    return ManifestRow(f"/in/{name}", "stamp", "ok", audio_filepath=f"/out/{name}", duration=1.5, sample_rate=16000,
                       channels=1, seconds_processing=0.2, model={"source": "m", "weights_sha256": "0" * 16},
                       scores=scores)


def test_a_row_round_trips_with_its_optional_columns_flattened():
    row = ok_row("a.wav", dnsmos_ovrl_after=3.1)
    values = row.to_dict()
    assert values["dnsmos_ovrl_after"] == 3.1 and values["audio_filepath"] == "/out/a.wav" and "scores" not in values
    assert ManifestRow.from_dict(values) == row


@pytest.mark.parametrize("status, kind", [("done", None), ("error", None), ("error", "unknown")])
def test_rows_with_an_unknown_status_or_error_kind_are_refused(status, kind):
    with pytest.raises(ValueError, match="invalid"):
        ManifestRow("/in/a.wav", "s", status, error="x", error_kind=kind)


def test_rows_are_appended_and_read_back_in_order(tmp_path):
    uri = str(tmp_path / "m" / "manifest.jsonl")
    writer = ManifestWriter(uri, [])
    writer.append(ok_row("a.wav"))
    writer.append(ManifestRow.failed("/in/b.wav", "s", "/in/b.wav: not decodable", "input"))
    assert [row["input_filepath"] for row in read_manifest_rows(uri)] == ["/in/a.wav", "/in/b.wav"]


def test_a_torn_last_line_is_cut_off_before_the_next_row_is_appended(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(ok_row("a.wav").to_dict()) + "\n" + '{"input_filepath": "/in/b.w')
    writer = ManifestWriter(str(path), read_manifest_rows(str(path)))
    writer.append(ok_row("c.wav"))
    assert [row["input_filepath"] for row in read_manifest_rows(str(path))] == ["/in/a.wav", "/in/c.wav"]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 2


def test_an_append_on_a_full_disk_is_an_error_and_leaves_no_torn_line(tmp_path, monkeypatch):
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter(str(path), [])
    writer.append(ok_row("a.wav"))

    class HalfWritten:
        """An append that stores half its line, then finds the disk full."""

        def __init__(self, file):
            self.file = file

        def write(self, text):
            self.file.write(text[: len(text) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    def full_disk_open(name, mode="r", **kwargs):
        file = builtins.open(name, mode, **kwargs)
        return HalfWritten(file) if "a" in mode else file

    monkeypatch.setattr(manifest_module, "open", full_disk_open, raising=False)
    with pytest.raises(ManifestWriteError, match="No space left on device"):
        writer.append(ok_row("b.wav"))
    monkeypatch.undo()
    assert path.read_text() == json.dumps(ok_row("a.wav").to_dict(), sort_keys=True) + "\n"
    ManifestWriter(str(path), read_manifest_rows(str(path))).append(ok_row("c.wav"))
    assert [row["input_filepath"] for row in read_manifest_rows(str(path))] == ["/in/a.wav", "/in/c.wav"]


def test_compaction_keeps_the_latest_row_per_input_and_a_failed_one_loses_nothing(tmp_path, monkeypatch, caplog):
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter(str(path), [])
    writer.append(ManifestRow.failed("/in/a.wav", "s", "/in/a.wav: timeout", "system"))
    writer.append(ok_row("a.wav"))
    before = path.read_text()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest_module, "write_bytes_atomic", full_disk)
    writer.compact()
    assert path.read_text() == before and "kept as it is" in caplog.text
    monkeypatch.undo()
    writer.compact()
    assert [row["status"] for row in read_manifest_rows(str(path))] == ["ok"]


def test_an_object_store_manifest_is_rewritten_whole_on_flush(tmp_path):
    uri = "memory://manifest-test/_ansray/manifest.jsonl"
    writer = ManifestWriter(uri, [], flush_seconds=3600)
    writer.append(ok_row("a.wav"))
    assert read_manifest_rows(uri) == []  # object stores cannot append: rows wait for the next flush
    writer.flush()
    assert [row["input_filepath"] for row in read_manifest_rows(uri)] == ["/in/a.wav"]
