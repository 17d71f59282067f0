"""Specification of ansray.io.storage: listing, output mapping and atomic writes, on every storage."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from ansray.io import (
    AudioRef,
    KeyCollisionError,
    ManifestError,
    PathEscapeError,
    exists,
    fs_for,
    join_uri,
    list_audio,
    open_input,
    output_uri,
    read_bytes,
    write_bytes_atomic,
)

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


def put(root, key, data, options):
    write_bytes_atomic(join_uri(root, key), data, options)


def test_directory_listing_finds_audio_below_it_sorted_by_key(storage_root):
    root, options = storage_root
    files = {"c/d/e.ogg": b"e" * 5, "b/z.flac": b"z" * 3, "a.wav": b"a", "b/a.WAV": b"bb"}
    for key, data in files.items():
        put(root, key, data, options)
    put(root, "notes.txt", b"not audio", options)

    refs = list_audio(root, storage_options=options)

    assert [ref.key for ref in refs] == ["a.wav", "b/a.WAV", "b/z.flac", "c/d/e.ogg"]
    for ref in refs:
        assert ref.uri.endswith("/" + ref.key)
        assert ref.size == len(files[ref.key])
        assert ref.stamp
        assert read_bytes(ref.uri, options) == files[ref.key]
    assert list_audio(root, storage_options=options) == refs


def test_non_recursive_listing_keeps_only_the_top_folder(storage_root):
    root, options = storage_root
    for key in ["top.wav", "deeper/inner.wav"]:
        put(root, key, b"x", options)

    assert [ref.key for ref in list_audio(root, recursive=False, storage_options=options)] == ["top.wav"]


def test_extensions_choose_what_a_directory_listing_finds(storage_root):
    root, options = storage_root
    for key in ["a.wav", "b.flac"]:
        put(root, key, b"x", options)

    refs = list_audio(root, extensions=(".FLAC",), storage_options=options)

    assert [ref.key for ref in refs] == ["b.flac"]


def test_glob_keys_are_relative_to_the_folder_before_the_first_wildcard(storage_root):
    root, options = storage_root
    for key in ["2024/02/b.flac", "2024/01/a.flac", "2024/02/c.wav", "2023/01/x.flac"]:
        put(root, key, b"x", options)

    refs = list_audio(root + "/2024/*/*.flac", storage_options=options)

    assert [ref.key for ref in refs] == ["01/a.flac", "02/b.flac"]
    assert refs[0].uri.endswith("/2024/01/a.flac")


def test_list_of_uris_keeps_its_order_with_keys_below_their_common_folder(storage_root):
    root, options = storage_root
    for key in ["set/b/2.wav", "set/a/1.wav"]:
        put(root, key, b"x", options)

    refs = list_audio([root + "/set/b/2.wav", root + "/set/a/1.wav"], storage_options=options)

    assert [ref.key for ref in refs] == ["b/2.wav", "a/1.wav"]
    assert all(ref.size == 1 and ref.stamp for ref in refs)


def test_a_single_file_uri_is_keyed_by_its_name(storage_root):
    root, options = storage_root
    put(root, "deep/down/take.flac", b"x", options)

    [ref] = list_audio(root + "/deep/down/take.flac", storage_options=options)

    assert ref.key == "take.flac"


def test_text_manifest_lists_its_uris_in_order_skipping_blanks_and_comments(storage_root):
    root, options = storage_root
    for key in ["audio/b.wav", "audio/a.wav"]:
        put(root, key, b"x", options)
    manifest = f"# exported 2024-05-01\n{root}/audio/b.wav\n\naudio/a.wav\n"
    put(root, "list.txt", manifest.encode(), options)

    refs = list_audio(root + "/list.txt", storage_options=options)

    assert [ref.key for ref in refs] == ["audio/b.wav", "audio/a.wav"]


def test_jsonl_manifest_resolves_relative_paths_against_its_folder(storage_root):
    root, options = storage_root
    for key in ["corpus/clean/b.flac", "corpus/extra/a.wav"]:
        put(root, key, b"xy", options)
    lines = [
        {"audio_filepath": "clean/b.flac", "duration": 1.0, "text": "hello"},
        {"audio_filepath": "../corpus/extra/a.wav", "duration": 2.0},
    ]
    put(root, "corpus/train.jsonl", "\n".join(json.dumps(line) for line in lines).encode(), options)

    refs = list_audio(root + "/corpus/train.jsonl", storage_options=options)

    assert [ref.key for ref in refs] == ["clean/b.flac", "extra/a.wav"]
    assert [read_bytes(ref.uri, options) for ref in refs] == [b"xy", b"xy"]


def test_manifest_entry_that_does_not_exist_is_reported_with_its_manifest(storage_root):
    root, options = storage_root
    put(root, "list.jsonl", b'{"audio_filepath": "gone.wav"}\n', options)

    with pytest.raises(FileNotFoundError, match=r"gone\.wav.*list\.jsonl"):
        list_audio(root + "/list.jsonl", storage_options=options)


def test_manifest_line_without_audio_filepath_is_refused(tmp_path):
    (tmp_path / "list.jsonl").write_text('{"path": "a.wav"}\n')

    with pytest.raises(ManifestError, match="line 1"):
        list_audio(str(tmp_path / "list.jsonl"))


def test_missing_input_raises_file_not_found(storage_root):
    root, options = storage_root

    with pytest.raises(FileNotFoundError):
        list_audio(root + "/nothing/here.wav", storage_options=options)


def test_two_files_with_the_same_key_are_refused(tmp_path):
    for folder in ["one", "two"]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "take.wav").write_bytes(b"x")

    with pytest.raises(KeyCollisionError, match="take.wav"):
        list_audio([str(tmp_path / "one"), str(tmp_path / "two")])


def test_the_same_uri_named_twice_is_listed_once(tmp_path):
    (tmp_path / "take.wav").write_bytes(b"x")

    refs = list_audio([str(tmp_path), str(tmp_path / "take.wav")])

    assert [ref.key for ref in refs] == ["take.wav"]


def test_stamp_changes_when_an_object_is_rewritten(storage_root):
    root, options = storage_root
    put(root, "take.wav", b"first", options)
    [before] = list_audio(root, storage_options=options)

    put(root, "take.wav", b"second version", options)
    [after] = list_audio(root, storage_options=options)

    assert after.stamp != before.stamp
    assert after.size == len(b"second version")


def test_local_paths_stay_plain_paths_and_file_uris_stay_uris(tmp_path):
    (tmp_path / "take.wav").write_bytes(b"x")

    assert list_audio(str(tmp_path))[0].uri == str(tmp_path / "take.wav")
    assert list_audio(f"file://{tmp_path}")[0].uri == f"file://{tmp_path}/take.wav"


def test_a_killed_writers_leftover_is_not_listed(tmp_path):
    (tmp_path / ".take.wav.0123456789ab.part").write_bytes(b"half")

    assert list_audio(str(tmp_path)) == []


def test_output_uri_mirrors_the_key_under_the_output_root():
    ref = AudioRef(uri="s3://in/2024/a/b.wav", key="a/b.wav", size=1, stamp="e")

    assert output_uri(ref, "s3://out/run1/") == "s3://out/run1/a/b.wav"
    assert output_uri(ref, "/data/out", suffix="_clean") == "/data/out/a/b_clean.wav"
    assert output_uri(ref, "memory://out", extension="flac") == "memory://out/a/b.flac"
    assert output_uri(ref, "memory://out", suffix=".enh", extension=".flac") == "memory://out/a/b.enh.flac"


@pytest.mark.parametrize(
    "key",
    [
        "../x.wav",
        "a/../../x.wav",
        "a/..",
        "/etc/passwd",
        "s3://other/x.wav",
        "a\\..\\..\\x.wav",
        "C:/x.wav",
        "",
    ],
)
def test_keys_that_would_escape_the_output_root_are_refused(key):
    ref = AudioRef(uri="s3://in/x.wav", key=key, size=1, stamp="e")

    with pytest.raises(PathEscapeError):
        output_uri(ref, "/data/out")


@pytest.mark.parametrize("key", ["x.wav", "a/b/c.wav", "a..b.wav", "..hidden.wav", "a/./b.wav"])
def test_keys_below_the_root_are_accepted(key):
    assert join_uri("s3://out", key) == "s3://out/" + key


def test_atomic_write_creates_folders_and_replaces_the_whole_object(storage_root):
    root, options = storage_root
    uri = join_uri(root, "new/folder/take.wav")

    write_bytes_atomic(uri, b"a much longer first version", options)
    write_bytes_atomic(uri, [b"second ", b"version"], options)

    assert read_bytes(uri, options) == b"second version"
    assert exists(uri, options)


def _failing_chunks():
    yield b"first half of the new content"
    raise RuntimeError("encoder crashed")


def test_a_writer_failing_midway_leaves_the_previous_content_and_nothing_else(storage_root):
    root, options = storage_root
    uri = join_uri(root, "take.wav")
    write_bytes_atomic(uri, b"complete old version", options)

    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_bytes_atomic(uri, _failing_chunks(), options)

    assert read_bytes(uri, options) == b"complete old version"
    fs, path = fs_for(root, options)
    fs.invalidate_cache(path)
    assert [name.rsplit("/", 1)[-1] for name in fs.find(path)] == ["take.wav"]


def test_a_writer_failing_midway_leaves_no_object_at_the_final_name(storage_root):
    root, options = storage_root
    uri = join_uri(root, "take.wav")

    with pytest.raises(RuntimeError):
        write_bytes_atomic(uri, _failing_chunks(), options)

    assert not exists(uri, options)


KILLED_WRITER = """
import json, sys, time
from ansray.io import write_bytes_atomic

def chunks():
    for index in range(100_000):
        yield b"partial " * 8192
        if index == 3:
            print("writing", flush=True)
        time.sleep(0.002)

write_bytes_atomic(sys.argv[1], chunks(), json.loads(sys.argv[2]))
"""


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_writer_killed_mid_write_leaves_no_file_at_the_final_name(storage, request, tmp_path):
    if storage == "local":
        root, options = str(tmp_path), None
    else:
        root, options = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_storage_options")
    complete, fresh = join_uri(root, "complete.wav"), join_uri(root, "fresh.wav")
    write_bytes_atomic(complete, b"complete old version", options)
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY))

    for uri in [complete, fresh]:
        writer = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, uri, json.dumps(options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        try:
            assert writer.stdout.readline() == "writing\n", writer.stderr.read()
            if storage == "local":  # the kill really lands mid-write: part of the data is on disk
                assert any(name.endswith(".part") for name in os.listdir(tmp_path))
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait(timeout=30)
        assert writer.returncode == -signal.SIGKILL

    assert read_bytes(complete, options) == b"complete old version"
    assert not exists(fresh, options)


def test_open_input_seeks_and_reads_byte_ranges(storage_root):
    root, options = storage_root
    uri = join_uri(root, "bytes.bin")
    write_bytes_atomic(uri, bytes(range(256)) * 4, options)

    with open_input(uri, options) as file:
        file.seek(1000)
        assert file.read(4) == bytes([232, 233, 234, 235])
        file.seek(10)
        assert file.read(2) == bytes([10, 11])


def test_storage_options_reach_the_filesystem(s3_storage_options, s3_bucket):
    fs, path = fs_for(s3_bucket + "/a/b.wav", s3_storage_options)

    assert path == s3_bucket.removeprefix("s3://") + "/a/b.wav"
    assert fs.client_kwargs["endpoint_url"] == s3_storage_options["client_kwargs"]["endpoint_url"]
    assert fs.key == "testing"


def test_a_link_to_a_file_is_listed_and_links_to_folders_are_not_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.wav").write_bytes(b"RIFF" * 10)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "link.wav").symlink_to(tmp_path / "real" / "a.wav")
    (tmp_path / "in" / "folder").symlink_to(tmp_path / "in")  # a loop, were folders followed

    (ref,) = list_audio(str(tmp_path / "in"))
    assert (ref.key, ref.size) == ("link.wav", 40) and ref.stamp
    assert read_bytes(ref.uri) == b"RIFF" * 10


def test_broken_links_and_loops_are_listed_so_that_each_fails_as_its_own_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "in" / "loop.wav").symlink_to(tmp_path / "in" / "loop.wav")
    listed = list_audio(str(tmp_path / "in"))
    named = list_audio([str(tmp_path / "in" / "loop.wav"), str(tmp_path / "in" / "dangling.wav")])
    for refs in (listed, named):
        assert sorted(ref.key for ref in refs) == ["dangling.wav", "loop.wav"]
        assert all(ref.size == 0 and ref.stamp == "" for ref in refs)


def test_an_existing_name_with_glob_characters_is_taken_literally(tmp_path):
    (tmp_path / "name[ack].wav").write_bytes(b"x")
    (tmp_path / "namea.wav").write_bytes(b"y")
    assert [ref.key for ref in list_audio(str(tmp_path / "name[ack].wav"))] == ["name[ack].wav"]
    assert [ref.key for ref in list_audio(str(tmp_path / "name[a].wav"))] == ["namea.wav"]  # a pattern


def test_an_input_that_matches_nothing_is_an_error_and_an_empty_folder_a_warning(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="matches no audio files"):
        list_audio(str(tmp_path / "*.flac"))
    (tmp_path / "empty").mkdir()
    assert list_audio(str(tmp_path / "empty")) == []
    assert "holds no audio files" in caplog.text
