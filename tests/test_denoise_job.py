"""The distributed denoise job end to end: local and S3 trees, manifest, resume, kill, actor crash."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import ray
import soundfile as sf

from ansray.denoise import DenoiseConfig, SegmentEnhancer, read_manifest_rows, run_denoise
from ansray.enhancement import enhance
from ansray.model import CheckpointError, save_model_dir
from ansray.segments import SegmentOptions
from models import constant_mask_model, save_tiny_model

REPO = Path(__file__).resolve().parents[1]
# (key, rate, channels, seconds, format, subtype): the formats, rates, layouts and lengths users hold.
GOOD_FILES = [
    ("short.wav", 16000, 1, 0.3, "WAV", "PCM_16"),
    ("music/stereo24.wav", 44100, 2, 4.0, "WAV", "PCM_24"),
    ("music/float.wav", 48000, 1, 2.5, "WAV", "FLOAT"),
    ("talks/phone.flac", 8000, 1, 180.0, "FLAC", "PCM_16"),
    ("talks/voice.ogg", 48000, 2, 3.0, "OGG", "VORBIS"),
    ("talks/deep/lecture.flac", 16000, 2, 12.0, "FLAC", "PCM_24"),
]
BAD_FILES = ["broken/not_audio.wav", "broken/empty.flac", "broken/truncated.wav"]
SEGMENTS = SegmentOptions(segment_seconds=4.0, overlap_seconds=0.5, batch_size=8)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def write_tree(root: str, storage_options=None) -> None:
    fs, base = fsspec.core.url_to_fs(root, **(storage_options or {}))
    fs.auto_mkdir = True
    rng = np.random.default_rng(0)
    for key, rate, channels, seconds, fmt, subtype in GOOD_FILES:
        t = np.arange(int(rate * seconds)) / rate
        tone = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * np.linspace(0.5, 1.0, channels)
        data = (tone + 0.05 * rng.standard_normal((len(t), channels))).astype(np.float32)
        path = f"/tmp/ansray-tree-{os.getpid()}-{key.replace('/', '_')}"
        sf.write(path, data, rate, format=fmt, subtype=subtype)
        fs.pipe(f"{base}/{key}", Path(path).read_bytes())
        os.remove(path)
    good = Path(f"/tmp/ansray-tree-{os.getpid()}.wav")
    sf.write(good, np.zeros(16000, np.float32), 16000)
    fs.pipe(f"{base}/broken/not_audio.wav", b"this is a text file, not a RIFF header" * 10)
    fs.pipe(f"{base}/broken/empty.flac", b"")
    fs.pipe(f"{base}/broken/truncated.wav", good.read_bytes()[:20000])
    good.unlink()


def config(inputs, output, model, **overrides) -> DenoiseConfig:
    return DenoiseConfig(inputs=(inputs,), output=output, model=model, segments=SEGMENTS, **overrides)


def check_outputs(input_root, output_root, storage_options=None):
    fs, _ = fsspec.core.url_to_fs(output_root, **(storage_options or {}))
    for key, rate, channels, seconds, fmt, subtype in GOOD_FILES:
        with fs.open(f"{output_root}/{key}", "rb") as f:
            info = sf.info(f)
        assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype), key
        assert info.frames == int(rate * seconds), key
    rows = read_manifest_rows(f"{output_root}/_ansray/manifest.jsonl", storage_options)
    by_input = {row["input_filepath"]: row for row in rows}
    assert len(rows) == len(by_input) == len(GOOD_FILES) + len(BAD_FILES)
    for key in BAD_FILES:
        row = by_input[f"{input_root}/{key}"]
        assert row["status"] == "error" and key.split("/")[-1] in row["error"], row
    for key, rate, channels, seconds, *_ in GOOD_FILES:
        row = by_input[f"{input_root}/{key}"]
        assert row["status"] == "ok" and row["audio_filepath"] == f"{output_root}/{key}"
        assert row["sample_rate"] == rate and row["channels"] == channels
        assert row["duration"] == pytest.approx(seconds)
        assert len(row["model"]["weights_sha256"]) == 16 and row["seconds_processing"] >= 0


def test_mixed_local_tree_is_denoised_resumed_and_overwritten(tmp_path, model_dir):
    inputs, output = str(tmp_path / "in"), str(tmp_path / "out")
    write_tree(inputs)
    first = run_denoise(config(inputs, output, model_dir))
    assert (first.ok, first.error, first.skipped) == (len(GOOD_FILES), len(BAD_FILES), 0)
    check_outputs(inputs, output)

    again = run_denoise(config(inputs, output, model_dir))
    assert (again.ok, again.error, again.skipped) == (0, 0, len(GOOD_FILES) + len(BAD_FILES))

    Path(output, "music/float.wav").unlink()  # a lost output is redone on the next run
    (Path(inputs) / "short.wav").touch()  # so is a changed input
    partial = run_denoise(config(inputs, output, model_dir))
    assert (partial.ok, partial.skipped) == (2, len(GOOD_FILES) + len(BAD_FILES) - 2)

    redo = run_denoise(config(inputs, output, model_dir, overwrite=True))
    assert (redo.ok, redo.error) == (len(GOOD_FILES), len(BAD_FILES))
    check_outputs(inputs, output)


def test_s3_tree_is_denoised_to_s3(s3_bucket, s3_storage_options, model_dir):
    inputs, output = f"{s3_bucket}/archive", f"{s3_bucket}/clean"
    write_tree(inputs, s3_storage_options)
    summary = run_denoise(config(inputs, output, model_dir, storage_options=s3_storage_options))
    assert (summary.ok, summary.error) == (len(GOOD_FILES), len(BAD_FILES))
    check_outputs(inputs, output, s3_storage_options)


def test_mixdown_writes_mono(tmp_path, model_dir):
    data = (0.1 * np.random.default_rng(1).standard_normal((16000, 2))).astype(np.float32)
    sf.write(tmp_path / "st.wav", data, 16000)
    # local:// (Ray Data's scheme for the driver's own disk) pins reading and writing to the driver's node.
    summary = run_denoise(config(str(tmp_path / "st.wav"), f"local://{tmp_path}/out", model_dir, mixdown=True,
                                 output_format="flac", suffix="_clean"))
    assert summary.ok == 1
    assert 0 < summary.startup_seconds < summary.wall_seconds  # benchmarks report throughput without start-up
    info = sf.info(tmp_path / "out" / "st_clean.flac")
    assert (info.channels, info.format, info.frames) == (1, "FLAC", 16000)


def test_batches_of_one_fit_segments_to_each_file_as_enhance_does(tmp_path, model_dir):
    """At batch 1 a 0.3 s file is not computed as a whole segment of zeros: segments are fitted to each
    file, so rows of different lengths flow through the actors, and each output equals `enhance`'s."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(7)
    files = {"a.wav": (16000, 0.3), "b.wav": (44100, 2.0), "c.wav": (16000, 9.7)}
    for name, (rate, seconds) in files.items():
        sf.write(inputs / name, (0.1 * rng.standard_normal(int(rate * seconds))).astype(np.float32), rate, subtype="FLOAT")
    options = SegmentOptions(segment_seconds=4.0, overlap_seconds=0.5, batch_size=1)
    summary = run_denoise(DenoiseConfig(inputs=(str(inputs),), output=str(tmp_path / "out"), model=model_dir,
                                        segments=options))
    assert (summary.ok, summary.error) == (3, 0)
    for name, (rate, seconds) in files.items():
        data, _ = sf.read(inputs / name, dtype="float32")
        out, _ = sf.read(tmp_path / "out" / name, dtype="float32")
        np.testing.assert_allclose(out, enhance(data, rate, model_dir, segment_seconds=4.0, overlap_seconds=0.5),
                                   atol=1e-5, err_msg=name)


def test_crashed_actor_is_restarted_and_every_output_written_once(tmp_path, model_dir):
    marker = tmp_path / "crashed-once"

    class CrashingOnce(SegmentEnhancer):
        def __call__(self, batch):
            if not marker.exists():
                marker.touch()
                os._exit(1)  # the actor process dies mid-batch
            return super().__call__(batch)

    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        sf.write(inputs / f"f{i}.wav", (0.1 * rng.standard_normal(16000 * 9)).astype(np.float32), 16000)
    summary = run_denoise(config(str(inputs), str(output), model_dir), enhancer_cls=CrashingOnce)
    assert marker.exists()
    assert (summary.ok, summary.error) == (3, 0)
    appended = [json.loads(line) for line in (output / "_ansray/manifest.jsonl").read_text().splitlines()]
    assert sorted(row["input_filepath"] for row in appended) == [str(inputs / f"f{i}.wav") for i in range(3)]
    for i in range(3):
        assert sf.info(output / f"f{i}.wav").frames == 16000 * 9


def test_killed_job_leaves_no_partial_output_and_rerun_completes(tmp_path, model_dir):
    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rng = np.random.default_rng(2)
    for i in range(8):
        sf.write(inputs / f"f{i}.flac", (0.1 * rng.standard_normal(16000 * 20)).astype(np.float32), 16000)
    command = [sys.executable, str(REPO / "jobs" / "denoise.py"), "--input", str(inputs), "--output", str(output),
               "--model", model_dir, "--segment-seconds", "4", "--overlap-seconds", "0.5"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(output.glob("f*.flac")):
        assert job.poll() is None, "the job ended before it could be killed"
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    written = sorted(output.glob("f*.flac"))
    assert 0 < len(written) < 8, "the kill should land mid-job"
    for path in written:  # whatever is visible is complete
        assert sf.info(path).frames == 16000 * 20
        sf.read(path)
    # Files are recorded once written; a file written in the same moment as the kill may not be yet.
    recorded = [row for row in read_manifest_rows(str(output / "_ansray/manifest.jsonl")) if row["status"] == "ok"]
    assert len(recorded) <= len(written)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"skipped {len(recorded)};" in done.stdout, done.stdout
    for i in range(8):
        assert sf.info(output / f"f{i}.flac").frames == 16000 * 20
    rows = read_manifest_rows(str(output / "_ansray/manifest.jsonl"))
    assert sorted(row["input_filepath"] for row in rows) == sorted(str(inputs / f"f{i}.flac") for i in range(8))
    assert all(row["status"] == "ok" for row in rows)


def test_cli_documents_every_flag_with_its_default():
    text = subprocess.run([sys.executable, str(REPO / "jobs" / "denoise.py"), "--help"], capture_output=True,
                          text=True, check=True).stdout
    for flag in ("--input", "--output", "--model", "--manifest", "--actors", "--gpus-per-actor", "--cpus-per-actor",
                 "--batch-size", "--segment-seconds", "--overlap-seconds", "--dtype", "--output-format", "--suffix",
                 "--overwrite", "--mixdown", "--limit", "--storage-options", "--address", "--quality"):
        assert flag in text, flag
    assert "default: 10.0" in text


def test_quality_dnsmos_scores_input_and_output_and_rescoring_resumes(tmp_path, model_dir):
    from ansray.metrics import DNSMOS

    speech, rate = sf.read(REPO / "tests" / "fixtures" / "speech" / "198-209-0000.ogg", dtype="float32")
    noise = np.random.default_rng(2).standard_normal(len(speech)).astype(np.float32)
    noisy = speech + 0.3 * np.sqrt(np.mean(speech**2)) * noise
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "mono.wav", noisy, rate, subtype="FLOAT")
    sf.write(inputs / "stereo.wav", np.stack([noisy, 0.5 * noisy], axis=1), rate, subtype="FLOAT")
    sf.write(inputs / "silent.wav", np.zeros(2 * rate, np.float32), rate)
    output = tmp_path / "out"
    plain = run_denoise(config(str(inputs), str(output), model_dir))
    assert plain.ok == 3

    scored = run_denoise(config(str(inputs), str(output), model_dir, quality=("dnsmos",)))
    assert (scored.ok, scored.skipped) == (3, 0)  # rows without scores are redone, not resumed
    rows = {Path(row["input_filepath"]).name: row for row in read_manifest_rows(str(output / "_ansray/manifest.jsonl"))}
    scorer = DNSMOS()
    for name in ("mono.wav", "stereo.wav"):
        row = rows[name]
        source, _ = sf.read(inputs / name, dtype="float32", always_2d=True)
        written, _ = sf.read(output / name, dtype="float32", always_2d=True)
        before, after = scorer(source.mean(axis=1), rate), scorer(written.mean(axis=1), rate)
        for field in ("sig", "bak", "ovrl", "p808"):
            assert 1.0 <= row[f"dnsmos_{field}_before"] <= 5.0 and 1.0 <= row[f"dnsmos_{field}_after"] <= 5.0
            assert row[f"dnsmos_{field}_before"] == pytest.approx(getattr(before, field), abs=0.02), (name, field)
            assert row[f"dnsmos_{field}_after"] == pytest.approx(getattr(after, field), abs=0.02), (name, field)
        assert row["dnsmos_reason"] is None
    silent = rows["silent.wav"]
    assert silent["status"] == "ok" and silent["dnsmos_ovrl_before"] is None and "silent" in silent["dnsmos_reason"]

    again = run_denoise(config(str(inputs), str(output), model_dir, quality=("dnsmos",)))
    assert (again.ok, again.skipped) == (0, 3)


def test_actors_taking_every_local_cpu_are_refused_before_any_work(tmp_path, model_dir):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(ValueError, match="at least 1 must be left to read and write files"):
        run_denoise(config(str(tmp_path / "a.wav"), str(tmp_path / "out"), model_dir, actors=(2, 2)))
    assert not (tmp_path / "out" / "a.wav").exists()


def test_outputs_inside_the_input_are_never_reread_and_colliding_outputs_are_both_refused(tmp_path, model_dir,
                                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    noise = (0.1 * np.random.default_rng(4).standard_normal(16000)).astype(np.float32)
    sf.write(tmp_path / "in" / "a.wav", noise, 16000)
    sf.write(tmp_path / "in" / "b.flac", noise, 16000)
    sf.write(tmp_path / "in" / "b.ogg", noise, 16000)
    first = run_denoise(config("in", "./in/out/", model_dir, output_format="wav"))
    assert (first.ok, first.error) == (1, 2)
    rows = {Path(row["input_filepath"]).name: row for row in read_manifest_rows(str(tmp_path / "in/out/_ansray/manifest.jsonl"))}
    for name, other in (("b.flac", "b.ogg"), ("b.ogg", "b.flac")):
        assert rows[name]["error_kind"] == "plan" and str(tmp_path / "in" / other) in rows[name]["error"]
    assert not (tmp_path / "in" / "out" / "b.wav").exists(), "neither colliding input may be written"
    assert sf.info(tmp_path / "in" / "out" / "a.wav").frames == 16000

    for spelling in (f"file://{tmp_path}/in", "./in/", f"{tmp_path}/in/*"):
        again = run_denoise(config(spelling, "in/out", model_dir, output_format="wav"))
        assert (again.ok, again.skipped, again.error) == (0, 1, 2), spelling
    assert not (tmp_path / "in" / "out" / "out").exists() and not list((tmp_path / "in" / "out").glob("*/a.wav"))


def test_storage_that_cannot_be_reached_stops_the_job_before_any_work_in_one_line(tmp_path, model_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))} | {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    # A closed local port: nothing answers, and nothing beyond this machine is ever asked.
    options = json.dumps({"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}})
    done = subprocess.run([sys.executable, str(REPO / "jobs" / "denoise.py"), "--input", "s3://archive/raw",
                           "--output", str(tmp_path / "out"), "--storage-options", options, "--model", model_dir],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: s3://archive/raw: cannot list inputs") and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_links_to_files_are_followed_and_broken_links_are_each_an_error_row(tmp_path, model_dir):
    (tmp_path / "real").mkdir()
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "real" / "a.wav", (0.1 * np.random.default_rng(6).standard_normal(8000)).astype(np.float32), 16000)
    (tmp_path / "in" / "link.wav").symlink_to(tmp_path / "real" / "a.wav")
    (tmp_path / "in" / "dangling.wav").symlink_to(tmp_path / "real" / "gone.wav")
    (tmp_path / "in" / "loop.wav").symlink_to(tmp_path / "in" / "loop.wav")
    summary = run_denoise(config(str(tmp_path / "in"), str(tmp_path / "out"), model_dir))
    assert (summary.ok, summary.error) == (1, 2)
    assert sf.info(tmp_path / "out" / "link.wav").frames == 8000 and not (tmp_path / "out" / "link.wav").is_symlink()
    rows = {Path(row["input_filepath"]).name: row for row in read_manifest_rows(str(tmp_path / "out/_ansray/manifest.jsonl"))}
    assert rows["dangling.wav"]["error_kind"] == rows["loop.wav"]["error_kind"] == "input"
    assert "not found" in rows["dangling.wav"]["error"] and "symbolic links" in rows["loop.wav"]["error"]
    # Named explicitly, a loop is still only that file's error.
    named = run_denoise(config(str(tmp_path / "in" / "loop.wav"), str(tmp_path / "out2"), model_dir))
    assert (named.ok, named.error) == (0, 1)


def noisy_speech(snr_db: float = 10.0, seed: int = 2) -> tuple[np.ndarray, int]:
    speech, rate = sf.read(REPO / "tests" / "fixtures" / "speech" / "198-209-0000.ogg", dtype="float32")
    noise = np.random.default_rng(seed).standard_normal(len(speech)).astype(np.float32)
    return speech + np.sqrt(np.mean(speech**2) / np.mean(noise**2)) / 10 ** (snr_db / 20) * noise, rate


def test_the_manifest_records_each_outputs_gain_and_the_attenuation_limit(tmp_path):
    model = str(tmp_path / "half")
    save_model_dir(constant_mask_model(0.5), model)  # output = 0.5 x input: -6.02 dB, same polarity
    noise = (0.1 * np.random.default_rng(8).standard_normal((16000 * 3, 2))).astype(np.float32)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "stereo.wav", noise, 16000, subtype="FLOAT")
    summary = run_denoise(config(str(tmp_path / "in"), str(tmp_path / "out"), model, attenuation_limit_db=6.0))
    assert summary.ok == 1
    (row,) = read_manifest_rows(str(tmp_path / "out/_ansray/manifest.jsonl"))
    assert row["output_gain"] == pytest.approx(0.5, abs=0.01) and row["output_gain_db"] == pytest.approx(-6.02, abs=0.1)
    assert row["attenuation_limit_db"] == 6.0 and row["output_source"] == "enhanced" and row["model"]["probe_gain"] > 0
    written, _ = sf.read(tmp_path / "out" / "stereo.wav", dtype="float32")
    g = 10 ** (-6 / 20)
    inner = slice(1600, -1600)  # away from the STFT's edges
    np.testing.assert_allclose(written[inner], (g + 0.5 * (1 - g)) * noise[inner], atol=2e-3)


def test_a_model_that_inverts_its_output_is_refused_before_any_work(tmp_path):
    model = str(tmp_path / "inverted")
    save_model_dir(constant_mask_model(-0.5), model)
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    with pytest.raises(CheckpointError, match="anti-correlated with its input"):
        run_denoise(config(str(tmp_path / "a.wav"), str(tmp_path / "out"), model))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("if_worse", ["keep-input", "attenuate"])
def test_if_worse_writes_the_input_or_a_milder_mix_where_the_output_scores_lower(tmp_path, model_dir, if_worse):
    noisy, rate = noisy_speech()
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "talk.wav", noisy, rate, subtype="PCM_16")
    # The test model has random weights: it makes speech worse, and DNSMOS says so.
    summary = run_denoise(config(str(tmp_path / "in"), str(tmp_path / "out"), model_dir, quality=("dnsmos",),
                                 if_worse=if_worse))
    assert summary.ok == 1
    (row,) = read_manifest_rows(str(tmp_path / "out/_ansray/manifest.jsonl"))
    assert row["dnsmos_ovrl_after"] < row["dnsmos_ovrl_before"]
    if if_worse == "keep-input":
        assert row["output_source"] == "input" and row["attenuation_limit_db"] is None
        assert (tmp_path / "out" / "talk.wav").read_bytes() == (tmp_path / "in" / "talk.wav").read_bytes()
    else:
        assert row["output_source"] == "attenuated" and row["attenuation_limit_db"] == 6.0
        limited, _ = sf.read(tmp_path / "out" / "talk.wav", dtype="float32")
        source, _ = sf.read(tmp_path / "in" / "talk.wav", dtype="float32")
        full = enhance(source, rate, model_dir, segment_seconds=4.0, overlap_seconds=0.5)
        g = 10 ** (-6 / 20)
        np.testing.assert_allclose(limited, g * source + (1 - g) * full, atol=2e-3)


def test_if_worse_keeps_the_enhanced_output_where_it_scores_higher(tmp_path):
    from ansray.model.starter import STARTER_MODEL_DIR

    noisy, rate = noisy_speech(snr_db=0.0)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "talk.wav", noisy, rate, subtype="FLOAT")
    # The starter model cleans speech in white noise at 0 dB SNR: DNSMOS says it helped.
    summary = run_denoise(config(str(tmp_path / "in"), str(tmp_path / "out"), str(STARTER_MODEL_DIR),
                                 quality=("dnsmos",), if_worse="keep-input"))
    assert summary.ok == 1
    (row,) = read_manifest_rows(str(tmp_path / "out/_ansray/manifest.jsonl"))
    assert row["dnsmos_ovrl_after"] > row["dnsmos_ovrl_before"]
    assert row["output_source"] == "enhanced" and row["attenuation_limit_db"] is None
    written, _ = sf.read(tmp_path / "out" / "talk.wav", dtype="float32")
    full = enhance(noisy, rate, str(STARTER_MODEL_DIR), segment_seconds=4.0, overlap_seconds=0.5)
    # The job's segments differ a little from enhance()'s fitted ones; the file is the output, not the input.
    assert np.linalg.norm(written - full) < 0.1 * np.linalg.norm(written - noisy)


def test_if_worse_needs_dnsmos_and_is_refused_without_it(tmp_path, model_dir):
    with pytest.raises(ValueError, match="needs --quality dnsmos"):
        run_denoise(config(str(tmp_path), str(tmp_path / "out"), model_dir, if_worse="keep-input"))
