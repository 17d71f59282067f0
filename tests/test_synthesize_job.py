"""The synthesis job on small generated corpora: written SNRs and levels, determinism across worker
counts, resume, bad sources, both layouts read back as pairs, and output to S3."""

import hashlib
import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import ray
import soundfile as sf

from ansray.data.mix import MixConfig, active_fraction, level_db, measure_snr
from ansray.data.pairs import decode_shard_batch, iter_shard_pairs, list_pairs, read_pair
from ansray.data.synthesis import (
    ResumeMismatchError,
    SynthesisConfig,
    plan_synthesis,
    run_synthesis,
    synthesize_mixture,
)
from ansray.data.synthetic import synthetic_noise, synthetic_speech
from ansray.io import read_audio

SR = 16000
COUNT = 12
MIX = MixConfig(audio_length=3.0, snr_lower=-5, snr_upper=25)
JOB = Path(__file__).resolve().parents[1] / "jobs" / "synthesize.py"


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """clean/: five speech-like files of 1.5-4 s and one that is mostly silence;
    noise/: three noise files (one 48 kHz stereo), one corrupt mid-stream, one not audio at all."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(1234)
    (root / "clean").mkdir()
    (root / "noise").mkdir()
    for i, seconds in enumerate([1.5, 2.0, 2.5, 3.0, 4.0]):
        sf.write(root / f"clean/speaker{i}.wav", synthetic_speech(rng, seconds, SR), SR, subtype="PCM_16")
    mostly_silent = np.zeros(4 * SR, dtype=np.float32)
    for start in range(0, 4 * SR, int(0.4 * SR)):  # a 20 ms burst every 400 ms: activity about 0.3
        mostly_silent[start : start + int(0.02 * SR)] = synthetic_speech(rng, 0.02, SR)
    sf.write(root / "clean/silent.wav", mostly_silent, SR, subtype="PCM_16")
    sf.write(root / "noise/white.flac", synthetic_noise(rng, 2.0, SR, "white"), SR)
    sf.write(root / "noise/pink.wav", synthetic_noise(rng, 2.5, SR, "pink"), SR, subtype="PCM_16")
    stereo = np.stack([synthetic_noise(rng, 2.0, 48000, "brown")] * 2, axis=1)
    sf.write(root / "noise/brown48k.wav", stereo, 48000, subtype="PCM_16")
    sf.write(root / "noise/corrupt.flac", synthetic_noise(rng, 2.0, SR, "pink"), SR)
    data = bytearray((root / "noise/corrupt.flac").read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4000] = bytes(4000)  # the header stays valid
    (root / "noise/corrupt.flac").write_bytes(bytes(data))
    (root / "noise/garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot audio")
    return root


def config(corpus, output, **overrides) -> SynthesisConfig:
    values = dict(clean=(str(corpus / "clean"),), noise=(str(corpus / "noise"),), output=str(output),
                  count=COUNT, seed=7, mix=MIX, valid_fraction=0.25)
    return SynthesisConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def dns_set(corpus, tmp_path_factory):
    output = tmp_path_factory.mktemp("dns") / "set"
    return output, run_synthesis(config(corpus, output), workers=1)


def manifest_rows(output):
    return [json.loads(line) for split in ("train", "valid")
            for line in (output / f"{split}.jsonl").read_text().splitlines()]


def file_hashes(root, skip=("summary.json",)):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


def mono(path):
    return read_audio(str(path))[0][:, 0]


def test_written_snr_equals_meta_and_levels_stay_in_range_below_full_scale(dns_set):
    output, summary = dns_set
    rows = manifest_rows(output)
    assert summary.written == len(rows) == COUNT and summary.failed == 0
    assert sorted(r["split"] for r in rows).count("valid") == COUNT // 4
    for row in rows:
        noisy, clean, noise = (mono(output / row[key])
                               for key in ("input_filepath", "target_filepath", "noise_filepath"))
        assert abs(measure_snr(clean, noise, MIX) - row["snr"]) < 0.1
        assert MIX.snr_lower <= row["snr"] < MIX.snr_upper
        assert MIX.target_level_lower <= row["target_level"] < MIX.target_level_upper
        assert abs(level_db(noisy) - row["level"]) < 0.05
        assert row["level"] <= row["target_level"] + 0.05
        assert max(np.max(np.abs(s)) for s in (noisy, clean, noise)) <= MIX.clipping_threshold
        assert len(noisy) == len(clean) == len(noise) == MIX.clip_frames


def test_outputs_are_identical_with_one_and_two_workers(dns_set, corpus, tmp_path):
    output, _ = dns_set
    run_synthesis(config(corpus, tmp_path / "set"), workers=2)
    assert file_hashes(tmp_path / "set") == file_hashes(output)


def test_corrupt_sources_are_reported_skipped_and_counted(dns_set):
    output, summary = dns_set
    assert {Path(uri).name for uri in summary.bad_sources} == {"garbage.wav", "corrupt.flac"}
    assert "lost sync" in next(r for u, r in summary.bad_sources.items() if u.endswith("corrupt.flac"))
    assert summary.skipped_pieces["unreadable"] >= 1
    recorded = json.loads((output / "summary.json").read_text())
    assert recorded["bad_sources"] == summary.bad_sources
    used = {Path(s["uri"]).name for row in manifest_rows(output) for s in row["noise_sources"]}
    # Windows of corrupt.flac away from the damage decode and may be used; garbage.wav never opens.
    assert "garbage.wav" not in used and {"white.flac", "pink.wav", "brown48k.wav"} <= used


def test_clean_activity_threshold_skips_inactive_clean_pieces(dns_set):
    output, summary = dns_set
    assert summary.skipped_pieces["inactive"] >= 1
    for row in manifest_rows(output):
        for piece in row["clean_sources"]:
            start, frames = round(piece["offset"] * SR), round(piece["duration"] * SR)
            window = read_audio(piece["uri"], start=start, frames=frames)[0][:, 0]
            assert active_fraction(window, SR) >= MIX.clean_activity_threshold


def test_dns_layout_loads_back_as_pairs_from_folders_and_manifest(dns_set):
    output, _ = dns_set
    from_folder = list_pairs(str(output / "train"))
    from_manifest = list_pairs(str(output / "train.jsonl"))
    assert [p.fileid for p in from_folder] == sorted(p.fileid for p in from_manifest)
    assert len(from_folder) == COUNT - COUNT // 4
    noisy, clean = read_pair(from_manifest[0])
    row = manifest_rows(output)[0]
    np.testing.assert_array_equal(clean, mono(output / row["target_filepath"]))
    assert noisy.shape == clean.shape == (MIX.clip_frames,)


def test_rerun_keeps_written_mixtures_and_completes_an_interrupted_run(dns_set, tmp_path):
    output, _ = dns_set
    copy = tmp_path / "copy"
    shutil.copytree(output, copy)
    rows = manifest_rows(copy)
    for row in rows[:3]:  # an interruption before these mixtures were marked done
        (copy / row["split"] / "meta" / f"meta_fileid_{row['fileid']}.json").unlink()
    (copy / rows[0]["target_filepath"]).unlink()
    summary = run_synthesis(config_like(output, copy), workers=2)
    assert (summary.written, summary.resumed) == (3, COUNT - 3)
    assert file_hashes(copy) == file_hashes(output)


def config_like(output, new_output):
    """The config recorded in `output`, pointed at `new_output`."""
    recorded = json.loads((output / "synthesis.json").read_text())["config"]
    recorded["mix"] = MixConfig(**recorded["mix"])
    for key in ("clean", "noise", "rir"):
        recorded[key] = tuple(recorded[key])
    return SynthesisConfig(**{**recorded, "output": str(new_output)})


def test_rerun_with_other_arguments_is_refused(dns_set, corpus):
    output, _ = dns_set
    with pytest.raises(ResumeMismatchError, match="different config"):
        run_synthesis(config(corpus, output, seed=8), workers=1)


def test_shards_layout_loads_back_as_pairs_with_meta(corpus, tmp_path):
    output = tmp_path / "shards"
    summary = run_synthesis(config(corpus, output, layout="shards", shard_rows=4), workers=2)
    assert summary.written == COUNT
    assert sorted(p.name for p in (output / "train").iterdir()) == [f"shard-0000{i}.parquet" for i in range(3)]
    pairs = list(iter_shard_pairs(str(output / "train")))
    assert len(pairs) == COUNT - COUNT // 4
    for noisy, clean, meta in pairs:
        assert abs(measure_snr(clean, noisy - clean, MIX) - meta["snr"]) < 0.1
        assert max(np.max(np.abs(noisy)), np.max(np.abs(clean))) <= MIX.clipping_threshold
    manifest = list_pairs(str(output / "valid.jsonl"))
    noisy, clean = read_pair(manifest[1])
    valid = list(iter_shard_pairs(str(output / "valid" / "shard-00000.parquet")))
    np.testing.assert_array_equal(noisy, valid[1][0])
    np.testing.assert_array_equal(clean, valid[1][1])
    streamed = ray.data.read_parquet(str(output / "train")).map_batches(decode_shard_batch, batch_format="pandas")
    assert streamed.count() == COUNT - COUNT // 4


def test_s3_output_path_works(corpus, s3_bucket, s3_storage_options):
    output = f"{s3_bucket}/dns-set"
    summary = run_synthesis(config(corpus, output, count=4, valid_fraction=0.0), workers=2,
                            storage_options=s3_storage_options)
    assert summary.written == 4 and summary.manifests == {"train": f"{output}/train.jsonl"}
    pairs = list_pairs(f"{output}/train", storage_options=s3_storage_options)
    assert [p.fileid for p in pairs] == [0, 1, 2, 3]
    noisy, clean = read_pair(pairs[0], storage_options=s3_storage_options)
    assert noisy.shape == clean.shape == (MIX.clip_frames,)
    again = run_synthesis(config(corpus, output, count=4, valid_fraction=0.0), workers=1,
                          storage_options=s3_storage_options)
    assert (again.written, again.resumed) == (0, 4)


def test_a_mixture_without_usable_noise_fails_alone_and_names_the_sources(corpus, tmp_path):
    (tmp_path / "noise").mkdir()
    shutil.copy(corpus / "noise/corrupt.flac", tmp_path / "noise")
    cfg = config(corpus, tmp_path / "set", noise=(str(tmp_path / "noise"),), mix=replace(MIX, max_source_tries=3))
    outcome = synthesize_mixture(plan_synthesis(cfg), 0)
    assert outcome.mixture is None and "could not build a noise clip" in outcome.error
    unreadable = [Path(uri).name for uri, reason in outcome.skipped if reason.startswith("unreadable")]
    assert unreadable == ["corrupt.flac"] * 3


def test_command_line_flags_become_the_config(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    spec = importlib.util.spec_from_file_location("synthesize_job", JOB)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    args = job.parse_args(["--clean", "s3://c/a", "--clean", "s3://c/b", "--noise", "n/", "--output", "out/",
                           "--hours", "1.5", "--snr-range", "-5,20", "--level-range=-30,-20",
                           "--reverb-fraction", "0.5", "--rir", "r/", "--layout", "shards",
                           "--valid-fraction", "0.1", "--audio-length", "10"])
    cfg = job.config_from_args(args)
    assert args.address is None  # $RAY_ADDRESS is read when connecting: ansray.cluster.connect, every job's policy
    assert cfg.clean == ("s3://c/a", "s3://c/b") and cfg.layout == "shards" and cfg.mixture_count == 540
    assert (cfg.mix.snr_lower, cfg.mix.snr_upper, cfg.mix.target_level_lower) == (-5, 20, -30)
    assert cfg.mix.percent_for_adding_reverb == 0.5 and cfg.valid_fraction == 0.1
