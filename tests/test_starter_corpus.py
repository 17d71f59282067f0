"""scripts/make_starter_corpus.py at a few utterances: layout, formats, split disjointness, SOURCES.md."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_starter_corpus.py"
FLAGS = ["--train-minutes", "0.3", "--heldout-minutes", "0.2", "--noise-minutes", "0.4",
         "--rirs", "4", "--heldout-rirs", "2", "--seed", "3", "--workers", "2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    output = tmp_path_factory.mktemp("starter-corpus")
    subprocess.run([sys.executable, str(SCRIPT), "--output", str(output), *FLAGS],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    rows = [json.loads(line) for line in (output / "corpus.jsonl").read_text().splitlines()]
    return output, rows


def rows_of(rows, split, role):
    return [row for row in rows if row["split"] == split and row["role"] == role]


def test_each_split_has_clean_noise_and_rir_folders_of_listed_files(corpus):
    output, rows = corpus
    for split in ("train", "heldout"):
        for role in ("clean", "noise", "rir"):
            on_disk = sorted(str(p.relative_to(output)) for p in (output / split / role).glob("*.wav"))
            assert on_disk, f"{split}/{role} is empty"
            assert on_disk == sorted(row["path"] for row in rows_of(rows, split, role))


def test_every_file_is_16_khz_mono_16_bit_wav_of_the_listed_duration(corpus):
    output, rows = corpus
    for row in rows:
        info = sf.info(output / row["path"])
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "WAV", "PCM_16")
        assert info.frames / 16000 == pytest.approx(row["duration"], abs=1e-3)


def test_utterances_last_2_to_8_s_and_noises_5_to_20_s(corpus):
    _, rows = corpus
    for row in rows:
        if row["role"] == "clean":
            assert 2.0 <= row["duration"] <= 8.0 and row["text"] and row["voice"]
        elif row["role"] == "noise":
            assert 5.0 <= row["duration"] <= 20.0


def test_heldout_voices_speakers_and_texts_are_never_used_in_train(corpus):
    _, rows = corpus
    train, heldout = rows_of(rows, "train", "clean"), rows_of(rows, "heldout", "clean")
    for field in ("voice", "speaker", "text"):
        assert not {row[field] for row in train} & {row[field] for row in heldout}, field
    train_ids = {text_id for row in train for text_id in row["text_ids"]}
    assert not train_ids & {text_id for row in heldout for text_id in row["text_ids"]}


def test_voice_noises_are_built_from_their_own_splits_utterances(corpus):
    _, rows = corpus
    for split in ("train", "heldout"):
        own = {row["path"] for row in rows_of(rows, split, "clean")}
        for row in rows_of(rows, split, "noise"):
            assert set(row["talkers_from"]) <= own


def test_sources_md_names_the_packages_with_versions_and_the_counts(corpus):
    output, rows = corpus
    sources = (output / "SOURCES.md").read_text()
    assert "| espeak-ng |" in sources and "| espeak-ng-data |" in sources and "GPL-3.0" in sources
    if shutil.which("dpkg-query"):
        assert "not installed by dpkg" not in sources
    for engine, package in (("flite:", "| flite |"), ("festival:", "| festival |")):
        if any(row.get("voice", "").startswith(engine) for row in rows):
            assert package in sources
    assert "make_starter_corpus.py --output" in sources and "--seed 3" in sources
    train_clean = len(rows_of(rows, "train", "clean"))
    assert f"| train | {train_clean} |" in sources
