"""scripts/pack_corpus.py: chunks of bounded size that unpack, in any number of goes, to the same files."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pack_corpus.py"
SPEC = importlib.util.spec_from_file_location("pack_corpus", SCRIPT)
pack_corpus = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(pack_corpus)


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    for index in range(12):
        path = root / "train" / f"speaker{index % 3}" / f"utt{index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([index]) * (20_000 + 1000 * index))
    (root / "SOURCES.md").write_text("sources\n")
    (root / "left-out.txt").write_text("not packed\n")
    return root


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_chunks_are_bounded_and_unpack_in_two_goes_to_the_same_files(corpus, tmp_path):
    chunks = pack_corpus.pack(corpus, tmp_path / "device" / "corpus", 0.1, ["train", "SOURCES.md"])
    assert len(chunks) >= 3
    assert all((c / pack_corpus.CHUNK_FILE).stat().st_size <= 0.1e6 + 2048 for c in chunks)
    dest = tmp_path / "unpacked"
    # First go: only the first chunk has arrived; the command names the missing ones and fails.
    first = tmp_path / "arrived"
    shutil.copytree(chunks[0], first / chunks[0].name)
    partial = run("unpack", first / "corpus-*", dest)
    assert partial.returncode != 0 and "chunks not here yet: corpus-2" in partial.stderr
    # Second go: the rest arrive, the first one's folder is gone; it is not needed again.
    shutil.rmtree(first / chunks[0].name)
    for chunk in chunks[1:]:
        shutil.copytree(chunk, first / chunk.name)
    done = run("unpack", first / "corpus-*", dest)
    assert done.returncode == 0, done.stderr
    packed = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file() and p.name != "left-out.txt")
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")) == packed
    for name in packed:
        assert (dest / name).read_bytes() == (corpus / name).read_bytes()


def test_a_damaged_chunk_is_refused_by_name(corpus, tmp_path):
    chunks = pack_corpus.pack(corpus, tmp_path / "corpus", 0.1, [])
    with open(chunks[1] / pack_corpus.CHUNK_FILE, "r+b") as tar:
        tar.truncate(1000)
    result = run("unpack", tmp_path / "corpus-*", tmp_path / "unpacked")
    assert result.returncode != 0 and f"{chunks[1].name}/corpus.tar: SHA-256" in result.stderr
