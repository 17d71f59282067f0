"""Training data: where pairs are found, how they are cut into segments, and on-the-fly mixtures."""

import json

import numpy as np
import pytest

from ansray.data.layouts import Mixture, write_shard
from ansray.data.pairs import list_pairs
from ansray.data.synthetic import synthetic_noise, synthetic_speech
from ansray.io import write_audio
from ansray.training.config import TrainConfig
from ansray.training.datasets import (
    PairSet,
    TrainingDataError,
    cut_segments,
    default_valid_uri,
    find_pairs,
    hold_out,
    mixing_plan,
    mixture_segments,
    pair_segments,
    shard_segments,
)


def write_wav(path, signal, rate=16000):
    write_audio(str(path), signal, rate, format="WAV", subtype="PCM_16")


def write_dns_folder(root, ids, seconds=1.0):
    rng = np.random.default_rng(0)
    for fileid in ids:
        clean = synthetic_speech(rng, seconds)
        write_wav(root / "clean" / f"clean_fileid_{fileid}.wav", clean)
        write_wav(root / "noisy" / f"a_b_snr5_tl-25_fileid_{fileid}.wav", clean + 0.1 * synthetic_noise(rng, seconds))


def test_fixed_segments_start_at_zero_and_drop_the_remainder():
    noisy, clean = np.arange(35, dtype=np.float32), -np.arange(36, dtype=np.float32)
    n, c = cut_segments(noisy, clean, 10)
    assert n.shape == c.shape == (3, 10)
    assert n[1, 0] == 10 and c[2, 9] == -29


def test_random_segments_move_their_offset_between_calls():
    noisy = np.arange(100, dtype=np.float32)
    rng = np.random.default_rng(0)
    starts = {int(cut_segments(noisy, noisy, 30, "random", rng)[0][0, 0]) for _ in range(50)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) < 30
    for _ in range(20):
        n, c = cut_segments(noisy, -noisy, 30, "random", rng)
        assert np.array_equal(n, -c) and np.all(np.diff(n, axis=1) == 1)


def test_a_pair_shorter_than_a_segment_is_padded_to_one():
    n, c = cut_segments(np.ones(7, np.float32), np.ones(7, np.float32), 10)
    assert n.shape == (1, 10) and n[0, 6] == 1 and n[0, 7] == 0


def test_pairs_are_found_in_any_tree_of_dns_folders(tmp_path):
    write_dns_folder(tmp_path / "no_reverb", [1, 2])
    write_dns_folder(tmp_path / "with_reverb", [1, 3])
    pairs = find_pairs(str(tmp_path))
    assert [(p.fileid, p.noisy.split("/")[-3]) for p in pairs.pairs] == [
        (1, "no_reverb"), (2, "no_reverb"), (1, "with_reverb"), (3, "with_reverb")]
    assert all(p.clean.endswith(f"clean_fileid_{p.fileid}.wav") for p in pairs.pairs)


def test_pairs_are_read_from_a_jsonl_manifest(tmp_path):
    write_dns_folder(tmp_path / "set", [4, 5])
    rows = [{"input_filepath": str(p), "target_filepath": str(tmp_path / "set/clean" / f"clean_fileid_{i}.wav")}
            for i, p in ((4, next((tmp_path / "set/noisy").glob("*_4.wav"))),
                         (5, next((tmp_path / "set/noisy").glob("*_5.wav"))))]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = find_pairs(str(manifest))
    assert [p.noisy for p in pairs.pairs] == [r["input_filepath"] for r in rows]


def test_a_synthesis_output_trains_on_train_and_validates_on_valid(tmp_path):
    (tmp_path / "synthesis.json").write_text("{}")
    write_dns_folder(tmp_path / "train", [0, 1, 3])
    write_dns_folder(tmp_path / "valid", [2])
    assert [p.fileid for p in find_pairs(str(tmp_path)).pairs] == [0, 1, 3]
    assert default_valid_uri(str(tmp_path)) == f"{tmp_path}/valid"
    assert default_valid_uri(f"{tmp_path}/train") is None


def test_a_folder_of_shards_is_read_as_shards(tmp_path):
    rng = np.random.default_rng(1)
    signal = synthetic_speech(rng, 1.0)
    record = {"sample_rate": 16000, "split": "train"}
    write_shard(str(tmp_path), "train/shard-00000.parquet",
                [Mixture(i, signal, signal, signal, dict(record, fileid=i)) for i in range(3)], "pcm16")
    pairs = find_pairs(str(tmp_path / "train"))
    assert pairs.shards == (str(tmp_path / "train" / "shard-00000.parquet"),) and not pairs.pairs

    import pyarrow.parquet as pq

    batch = pq.read_table(pairs.shards[0]).to_pydict()
    segments = shard_segments(batch, frames=4000, mode="fixed", sample_rate=16000)
    assert segments["noisy"].shape == (12, 4000)
    assert np.allclose(segments["clean"][1], signal[4000:8000], atol=1 / 32768)


def test_an_empty_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(TrainingDataError, match=str(tmp_path)):
        find_pairs(str(tmp_path))


def test_without_validation_data_one_pair_in_twenty_is_held_out():
    pairs = PairSet("x", pairs=tuple(range(45)))
    train, valid = hold_out(pairs)
    assert valid.pairs == (0, 20, 40) and len(train.pairs) == 42 and not set(train.pairs) & set(valid.pairs)
    with pytest.raises(TrainingDataError, match="give --valid-data"):
        hold_out(PairSet("x", pairs=(1,)))


def test_undecodable_pairs_are_skipped(tmp_path):
    write_dns_folder(tmp_path, [1], seconds=1.0)
    (tmp_path / "noisy" / "broken_fileid_2.wav").write_bytes(b"RIFF not audio")
    write_wav(tmp_path / "clean" / "clean_fileid_2.wav", np.zeros(16000, np.float32))
    refs = find_pairs(str(tmp_path)).pairs
    batch = {"noisy": np.array([r.noisy for r in refs]), "clean": np.array([r.clean for r in refs])}
    segments = pair_segments(batch, frames=8000, mode="fixed", sample_rate=16000)
    assert segments["noisy"].shape == segments["clean"].shape == (2, 8000)


@pytest.fixture
def sources(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(3):
        write_wav(tmp_path / "speech" / f"s{i}.wav", synthetic_speech(rng, 3.0))
        write_wav(tmp_path / "noise" / f"n{i}.wav", synthetic_noise(rng, 3.0))
    return TrainConfig(storage=str(tmp_path / "runs"), name="n", clean=(str(tmp_path / "speech"),),
                       noise=(str(tmp_path / "noise"),), segment_seconds=0.5)


def test_on_the_fly_mixtures_are_new_at_every_draw(sources):
    plan = mixing_plan(sources, sources.seed)
    batch = {"id": np.arange(4)}
    first = mixture_segments(batch, plan=plan, random_draws=True)
    second = mixture_segments(batch, plan=plan, random_draws=True)
    assert first["noisy"].shape == first["clean"].shape == (4, 8000)
    assert not np.allclose(first["noisy"], second["noisy"])
    assert not np.allclose(first["noisy"], first["clean"])


def test_on_the_fly_validation_mixtures_are_the_same_every_epoch(sources):
    plan = mixing_plan(sources, sources.seed + 1)
    batch = {"id": np.arange(3)}
    first = mixture_segments(batch, plan=plan, random_draws=False)
    again = mixture_segments(batch, plan=plan, random_draws=False)
    assert np.array_equal(first["noisy"], again["noisy"]) and np.array_equal(first["clean"], again["clean"])


def test_a_training_manifest_with_a_bad_line_is_refused_whole(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"input_filepath": "n.wav", "target_filepath": "c.wav"}\nnot json\n')
    with pytest.raises(ValueError, match=r"train\.jsonl line 2: expected JSON"):
        list_pairs(str(path))
    path.write_text('{"input_filepath": 3, "target_filepath": "c.wav"}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl line 1: input_filepath and target_filepath must be paths"):
        list_pairs(str(path))
