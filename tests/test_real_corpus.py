"""scripts/make_real_corpus.py on a miniature corpus made here: speakers and noise files split without
overlap, test-other and the fixture's speaker held out, licences and credits listed, deterministic."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("make_real_corpus", REPO / "scripts" / "make_real_corpus.py")
make_real_corpus = importlib.util.module_from_spec(SPEC)
sys.modules["make_real_corpus"] = make_real_corpus  # dataclasses look their module up there
SPEC.loader.exec_module(make_real_corpus)

README = """# test corpus
| folder | what | files | hours | speakers | licence |
|---|---|---:|---:|---:|---|
| `speech/librispeech-train-clean-5/` | x | 1 | 1 | 1 | CC BY 4.0 (LibriSpeech) |
| `speech/librispeech-train-clean-100-excerpts/` | x | 1 | 1 | 1 | CC BY 4.0 |
| `speech/librispeech-test-other-excerpts/` | x | 1 | 1 | 1 | CC BY 4.0 |
| `speech/commonvoice-cc0/` | x | 1 | 1 | many | CC0 (Common Voice) |

| folder | what | licence (per file, see the file beside them) |
|---|---|---|
| `noise/blanket/` | loops | CC0 or CC BY, per `SOUNDS_LICENSING.md` |
| `noise/speech-commands-background/` | recordings | CC BY 4.0 (Warden, Speech Commands) |
"""
BLANKET_LICENCES = """| Sound | Author | Editor* | License
| :-:  | :-: | :-: | :-:
| [Rain](https://example.org/rain) | rainmaker | Porrumentzio | CC BY
| [Wind](https://example.org/wind) | windy | - | CC0
| [Birds](https://example.org/birds) | birder | - | CC BY 3.0
"""
SPEAKERS = """; ID | SEX | SUBSET | MINUTES | NAME
11 | F | train-clean-100 | 25 | Reader Eleven
12 | M | train-clean-100 | 25 | Reader Twelve
21 | F | train-clean-100 | 25 | Reader TwentyOne
22 | F | train-clean-100 | 25 | Reader TwentyTwo
23 | M | train-clean-100 | 25 | Reader TwentyThree
24 | M | train-clean-100 | 25 | Reader TwentyFour
"""


def tone(rng, seconds, rate=16000, channels=1, level=0.1):
    t = np.arange(int(seconds * rate)) / rate
    signal = level * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    signal += 0.01 * level * rng.standard_normal(len(t))
    return np.repeat(signal[:, None], channels, axis=1) if channels > 1 else signal


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech-corpus")
    rng = np.random.default_rng(0)
    (root / "README.md").write_text(README)
    files = {
        "speech/librispeech-train-clean-5": ["11/100/11-100-0000", "11/100/11-100-0001", "12/200/12-200-0000"],
        "speech/librispeech-train-clean-100-excerpts": ["11-101-0000", "21-1-0000", "22-1-0000", "23-1-0000",
                                                        "24-1-0000", "198-209-0001"],
        "speech/librispeech-test-other-excerpts": ["31/7/31-7-0000", "31/7/31-7-0001", "32/8/32-8-0000"],
    }
    for folder, names in files.items():
        for name in names:
            path = root / folder / f"{name}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(rng, 2.0), 16000)
    (root / "speech/librispeech-train-clean-5/SPEAKERS.TXT").write_text(SPEAKERS)
    voice = root / "speech/commonvoice-cc0"
    voice.mkdir(parents=True)
    sf.write(voice / "common_voice_xx_1.wav", tone(rng, 2.0, 48000, 2), 48000)
    sf.write(voice / "common_voice_xx_2.wav", np.zeros(48000), 48000)  # silent: left out
    blanket = root / "noise/blanket"
    blanket.mkdir(parents=True)
    (blanket / "SOUNDS_LICENSING.md").write_text(BLANKET_LICENCES)
    for name in ("rain", "wind", "birds"):
        sf.write(blanket / f"{name}.ogg", tone(rng, 3.0, 44100, 2), 44100, format="OGG", subtype="VORBIS")
    commands = root / "noise/speech-commands-background"
    commands.mkdir(parents=True)
    for name in ("running_tap", "exercise_bike"):
        sf.write(commands / f"{name}.wav", tone(rng, 3.0), 16000, subtype="PCM_16")
    flags = ["--heldout-speakers", "2", "--heldout-generated-noises", "2", "--generated-noise-minutes", "0.1"]
    out = tmp_path_factory.mktemp("out") / "corpus"
    make_real_corpus.main([str(root), str(out), *flags])
    rows = [json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()]
    return root, out, rows, flags


def speakers(rows, split):
    return {row["speaker"] for row in rows if row["split"] == split and row["role"] == "clean"}


def test_speakers_are_split_by_speaker_not_by_folder(corpus):
    _, _, rows, _ = corpus
    train, heldout = speakers(rows, "train"), speakers(rows, "heldout")
    assert not train & heldout
    assert {"31", "32", "198"} <= heldout  # test-other, and the fixture's speaker wherever it appears
    assert {"11", "12"} <= train  # 11 has an excerpt too, but is a train-clean-5 speaker
    drawn = heldout - {"31", "32", "198"}
    assert len(drawn) == 2 and drawn <= {"21", "22", "23", "24"}
    assert {"F", "M"} == {{"21": "F", "22": "F", "23": "M", "24": "M"}[s] for s in drawn}
    # Every utterance of a training speaker is kept, whichever folder it came from.
    assert sum(1 for row in rows if row.get("speaker") == "11") == 3


def test_every_file_is_16_khz_mono_and_listed(corpus):
    _, out, rows, _ = corpus
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.suffix in (".ogg", ".flac", ".wav"))
    assert on_disk == sorted(row["path"] for row in rows)
    for row in rows:
        info = sf.info(out / row["path"])
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.frames / 16000 == pytest.approx(row["duration"], abs=1e-3)


def test_noise_files_are_held_out_per_folder_and_common_voice_is_never_a_target(corpus):
    _, _, rows, _ = corpus
    real = [row for row in rows if row["role"] == "noise" and row["source"] != "generated"]
    for folder in ("blanket", "speech-commands-background"):
        split_of = {row["source"]: row["split"] for row in real if f"/{folder}/" in row["source"]}
        assert set(split_of.values()) == {"train", "heldout"}, folder
    assert len({row["source"] for row in real}) == len(real)  # no file in both splits
    voices = [row for row in rows if "commonvoice" in row["source"]]
    assert [(row["split"], row["role"]) for row in voices] == [("heldout", "realworld")]
    generated = [row for row in rows if row["source"] == "generated"]
    assert {row["split"] for row in generated} == {"train", "heldout"}


def test_sources_list_every_file_with_its_licence_and_credit_cc_by_sources(corpus):
    _, out, rows, _ = corpus  # the readers credited are the training speakers
    sources = (out / "SOURCES.md").read_text()
    for row in rows:
        assert f"`{row['path']}`" in sources
    licences = {row["source"].split("/")[-1]: row["licence"] for row in rows}
    assert licences["rain.ogg"] == "CC BY" and licences["wind.ogg"] == "CC0"
    assert licences["running_tap.wav"].startswith("CC BY 4.0")
    credits = sources.split("## Credits")[1].split("## Every file")[0]
    names = {"11": "Eleven", "12": "Twelve", "21": "TwentyOne", "22": "TwentyTwo", "23": "TwentyThree", "24": "TwentyFour"}
    for speaker, name in names.items():
        assert (f"Reader {name} ({speaker})" in credits) == (speaker in speakers(rows, "train")), speaker
    trained_cc_by = [row for row in rows if row["split"] == "train" and row["role"] == "noise"
                     and make_real_corpus.is_attribution(row["licence"])]
    assert trained_cc_by and all(row["kind"] in credits for row in trained_cc_by)


def test_the_same_flags_give_the_same_corpus(corpus, tmp_path):
    root, out, _, flags = corpus
    make_real_corpus.main([str(root), str(tmp_path / "again"), *flags])
    assert (tmp_path / "again" / "corpus.jsonl").read_text() == (out / "corpus.jsonl").read_text()


def test_a_noise_file_without_a_licence_is_refused_by_name(corpus, tmp_path):
    root, _, _, flags = corpus
    stray = root / "noise" / "speech-commands-background" / ".." / "unlicensed"
    stray.mkdir()
    sf.write(stray / "hiss.wav", np.full(16000, 0.1), 16000)
    try:
        with pytest.raises(make_real_corpus.CorpusError, match="hiss.wav: no licence"):
            make_real_corpus.main([str(root), str(tmp_path / "refused"), *flags])
    finally:
        (stray / "hiss.wav").unlink()
        stray.rmdir()
