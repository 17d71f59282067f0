"""jobs/train.py trains FRCRN on Ray Train with DDP: it learns, checkpoints, resumes, survives a dead
worker, works on S3, and exports a model that load_model reads (issue 6, acceptance)."""

import importlib.util
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import s3fs
import torch

from ansray.data.mix import MixConfig
from ansray.data.synthesis import SynthesisConfig, run_synthesis
from ansray.data.synthetic import synthetic_noise, synthetic_speech
from ansray.io import write_audio
from ansray.model import load_model, weights_digest
from ansray.training.checkpoints import CHECKPOINT_NAME, checkpoint_dir_name
from models import save_tiny_model

ROOT = Path(__file__).resolve().parent.parent
# Two workers of half a CPU each, so that Ray Data keeps one CPU to decode audio.
SMALL_RUN = ["--model-size", "tiny", "--num-workers", "2", "--cpus-per-worker", "0.5", "--batch-size", "2",
             "--segment-seconds", "0.5", "--segment-mode", "random"]
# Validation SI-SNR improvement in the acceptance run below (tiny FRCRN, 2 workers, 6 epochs of 25
# steps), measured in 6 runs on 2 CPU cores: after epoch 1 -3.3, -3.4, -6.4, -10.4, -10.5 and -10.8 dB
# (the first 25 steps climb out of a random mask, at a pace that varies with the data order), after
# epoch 6 -0.2, 2.7, 5.5, 5.7, 5.8 and 6.1 dB; the rise was 8.8 to 16.4 dB. Where the model ends
# depends on that order, so the test asks for the bar, the rise, 3.8 dB below the smallest.
SI_SNR_RISE_DB = 5.0


def load_job():
    spec = importlib.util.spec_from_file_location("train_job", ROOT / "jobs" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def job():
    return load_job()


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, logging_level="WARNING")
    yield
    ray.shutdown()


def write_sources(root: str, storage_options: dict | None = None) -> tuple[str, str]:
    """Synthetic speech (8 speakers, 6 s each) and noises (white, pink, brown; 8 s each)."""
    rng = np.random.default_rng(0)
    for index in range(8):
        write_audio(f"{root}/clean/speaker{index}.wav", synthetic_speech(rng, 6.0), 16000, format="WAV",
                    subtype="PCM_16", storage_options=storage_options)
    for index, colour in enumerate(("white", "pink", "brown", "white")):
        write_audio(f"{root}/noise/{colour}{index}.wav", synthetic_noise(rng, 8.0, colour=colour), 16000,
                    format="WAV", subtype="PCM_16", storage_options=storage_options)
    return f"{root}/clean", f"{root}/noise"


def synthesize(sources: str, output: str, storage_options: dict | None = None, count: int = 40) -> str:
    """A DNS-layout set of `count` 3 s mixtures at -5..14 dB SNR, one in five held out in valid/."""
    clean, noise = write_sources(sources, storage_options)
    mix = MixConfig(audio_length=3.0, snr_lower=-5, snr_upper=15, clean_activity_threshold=0.0)
    cfg = SynthesisConfig(clean=(clean,), noise=(noise,), output=output, count=count, seed=1, mix=mix,
                          valid_fraction=0.2)
    summary = run_synthesis(cfg, workers=2, storage_options=storage_options)
    assert summary.failed == 0
    return output


@pytest.fixture(scope="module")
def dataset(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("training-data")
    return synthesize(str(root / "sources"), str(root / "set"))


def checkpoint_steps(run: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*") if (p / CHECKPOINT_NAME).exists())


def stopped_run_command(dataset: str, storage: Path) -> list[str]:
    """Two epochs of 6 steps, a checkpoint every 4 steps and at each epoch's end."""
    return ["--train-data", dataset, "--storage", str(storage), "--name", "run", *SMALL_RUN,
            "--epochs", "2", "--steps-per-epoch", "6", "--checkpoint-every-steps", "4", "--no-quality-metrics"]


@pytest.fixture(scope="module")
def stopped_run(job, dataset, tmp_path_factory) -> tuple[str, Path, dict]:
    """A run stopped at step 8 of 12, made once: each test below resumes its own copy of it."""
    storage = tmp_path_factory.mktemp("stopped")
    first = job.main(stopped_run_command(dataset, storage) + ["--stop-at-step", "8"])
    return dataset, storage, first.metrics


def copy_of_stopped_run(stopped_run, tmp_path: Path) -> tuple[list[str], Path]:
    """The stopped run copied under `tmp_path` (its checkpoint records name directories relative to
    the run): the command that continues it, and the run's directory."""
    dataset, storage, _ = stopped_run
    shutil.copytree(storage, tmp_path, dirs_exist_ok=True)
    return stopped_run_command(dataset, tmp_path), tmp_path / "run"


def test_training_lowers_loss_raises_si_snr_improvement_and_exports(job, dataset, tmp_path):
    """Tiny FRCRN, 2 DDP workers, 150 steps. It trains on the SI-SNR term of the loss: with the
    default 'Mix' loss the first ~150 steps go to fitting the masks (the mask MSE falls from ~1800
    to ~60 while SI-SNR first drops), which a short test cannot wait for; the Mix loss itself is
    checked against the reference in test_training_step.py and trains in the tests below."""
    storage, export = tmp_path / "runs", tmp_path / "export"
    summary = job.main(["--train-data", dataset, "--storage", str(storage), "--name", "tiny", *SMALL_RUN,
                        "--loss-mode", "SiSNR", "--lr", "3e-3", "--epochs", "6", "--steps-per-epoch", "25",
                        "--checkpoint-every-steps", "100", "--keep-checkpoints", "8", "--export", str(export)])

    epochs = summary.epochs()
    print("valid SI-SNRi per epoch (dB):", [round(m["valid_si_snr_improvement"], 2) for m in epochs])
    assert [m["epoch"] for m in epochs] == [1, 2, 3, 4, 5, 6]
    assert summary.metrics["step"] == 150 and summary.metrics["skipped_steps"] == 0
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 5.0  # minus the SI-SNR, in dB
    rise = epochs[-1]["valid_si_snr_improvement"] - epochs[0]["valid_si_snr_improvement"]
    assert rise > SI_SNR_RISE_DB
    assert 1.0 < epochs[-1]["valid_pesq_wb"] < 4.7 and 0.0 < epochs[-1]["valid_stoi"] <= 1.0

    run = storage / "tiny"
    assert checkpoint_steps(run) == [25, 50, 75, 100, 125, 150]
    assert sorted(p.name for p in (run / checkpoint_dir_name(150)).iterdir()) == [
        CHECKPOINT_NAME, "rng-rank0.pt", "rng-rank1.pt"]
    best = json.loads((run / "best" / "metrics.json").read_text())
    assert best["valid_si_snr_improvement"] == max(m["valid_si_snr_improvement"] for m in epochs)

    model = load_model(str(export))
    noisy = torch.from_numpy(np.stack([synthetic_speech(np.random.default_rng(5), 1.0)]))
    with torch.no_grad():
        enhanced = model(noisy).wav_l2
    assert enhanced.shape[-1] > 15000 and torch.isfinite(enhanced).all()
    assert weights_digest(model) == weights_digest(load_model(str(run / "best" / "model.pt")))


def test_rerun_resumes_from_latest_checkpoint_with_identical_parameters(job, stopped_run, tmp_path):
    assert stopped_run[2]["step"] == 8
    command, run = copy_of_stopped_run(stopped_run, tmp_path)
    assert checkpoint_steps(run) == [4, 6, 8]
    saved = load_model(str(run / checkpoint_dir_name(8) / CHECKPOINT_NAME))
    payload = torch.load(run / checkpoint_dir_name(8) / CHECKPOINT_NAME, weights_only=True)
    assert payload["state"]["step"] == 8 and payload["state"]["epoch"] == 1
    assert payload["state"]["best"]["epoch"] == 1 and payload["optimizer"]["state"]

    second = job.main(command)
    assert second.metrics["resumed_from_step"] == 8
    assert second.metrics["resumed_weights_digest"] == weights_digest(saved)
    assert second.metrics["step"] == 12 and second.metrics["epoch"] == 2
    assert checkpoint_steps(run) == [6, 8, 12]  # the last three are kept


def train_worker_pids() -> list[int]:
    """PIDs of this cluster's Ray Train worker processes: children of our raylet whose process
    title names RayTrainWorker (the state API needs the dashboard, which may not be installed)."""
    raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == raylet and "RayTrainWorker" in title:
            pids.append(int(entry))
    return sorted(pids)


def test_run_survives_a_killed_worker(job, dataset, tmp_path):
    run = tmp_path / "failure"
    killed = []

    def kill_a_worker_once_step_8_is_saved():
        # The checkpoint of step 8 on disk means that of step 4 is registered with the controller.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and 8 not in checkpoint_steps(run):
            time.sleep(0.5)
        pids = train_worker_pids()
        if pids:
            os.kill(pids[-1], signal.SIGKILL)
            killed.append(pids[-1])

    killer = threading.Thread(target=kill_a_worker_once_step_8_is_saved, daemon=True)
    killer.start()
    summary = job.main(["--train-data", dataset, "--storage", str(tmp_path), "--name", "failure", *SMALL_RUN,
                        "--epochs", "1", "--steps-per-epoch", "16", "--checkpoint-every-steps", "4",
                        "--max-failures", "1", "--no-quality-metrics"])
    killer.join()
    assert killed, "no training worker was found to kill"
    assert summary.metrics["step"] == 16
    # The restarted worker group resumed from a checkpoint; the first attempt started at step 0.
    assert summary.metrics["resumed_from_step"] in {4, 8, 12}
    assert checkpoint_steps(run)[-1] == 16


def test_training_reads_data_and_writes_checkpoints_on_s3(job, ray_cluster, s3_bucket, s3_storage_options, tmp_path):
    data = synthesize(f"{s3_bucket}/sources", f"{s3_bucket}/set", s3_storage_options, count=20)
    summary = job.main(["--train-data", data, "--storage", f"{s3_bucket}/runs", "--name", "s3", *SMALL_RUN,
                        "--epochs", "1", "--steps-per-epoch", "4", "--checkpoint-every-steps", "2",
                        "--no-quality-metrics", "--storage-options", json.dumps(s3_storage_options),
                        "--export", str(tmp_path / "export")])
    assert summary.metrics["step"] == 4
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_storage_options)
    run = f"{s3_bucket[len('s3://'):]}/runs/s3"
    for step in (2, 4):
        assert fs.exists(f"{run}/{checkpoint_dir_name(step)}/{CHECKPOINT_NAME}")
        assert fs.exists(f"{run}/{checkpoint_dir_name(step)}/rng-rank1.pt")
    assert fs.exists(f"{run}/best/model.pt")
    assert load_model(str(tmp_path / "export")).config.channels == 16


def test_mixing_on_the_fly_trains_from_clean_and_noise_sources(job, ray_cluster, tmp_path):
    clean, noise = write_sources(str(tmp_path / "sources"))
    summary = job.main(["--clean", clean, "--noise", noise, "--storage", str(tmp_path), "--name", "mixing",
                        "--model-size", "tiny", "--cpus-per-worker", "0.5", "--batch-size", "2",
                        "--segment-seconds", "0.5", "--snr-range=-5,15", "--epochs", "1", "--steps-per-epoch", "3",
                        "--valid-segments", "4", "--no-quality-metrics"])
    assert summary.metrics["step"] == 3 and summary.metrics["valid_segments"] == 4
    assert np.isfinite(summary.metrics["train_loss"]) and np.isfinite(summary.metrics["valid_si_snr_improvement"])


def test_rerun_falls_back_past_a_corrupt_latest_checkpoint_and_names_it(job, stopped_run, tmp_path):
    command, run = copy_of_stopped_run(stopped_run, tmp_path)
    latest = run / checkpoint_dir_name(8) / CHECKPOINT_NAME
    latest.write_bytes(latest.read_bytes()[:4096])  # a write cut short
    expected_digest = weights_digest(load_model(str(run / checkpoint_dir_name(6) / CHECKPOINT_NAME)))

    second = job.main(command)

    assert second.metrics["unreadable_checkpoints"] == str(latest)
    assert second.metrics["resumed_from"] == checkpoint_dir_name(6) and second.metrics["resumed_from_step"] == 6
    assert second.metrics["resumed_weights_digest"] == expected_digest
    assert second.metrics["step"] == 12
    # Step 8 again, beside the unreadable one (whose directory Ray's retention will delete), then 12.
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [
        checkpoint_dir_name(8), checkpoint_dir_name(8) + "-redo1", checkpoint_dir_name(12)]
    third = job.main(command)  # Ray still accepts the run directory, and the run is complete
    assert third.metrics["step"] == 12 and third.checkpoint.endswith(checkpoint_dir_name(12))


def test_workers_that_leave_no_cpu_of_a_local_machine_for_data_fail_at_once_with_the_fix(job, ray_cluster, tmp_path):
    with pytest.raises(SystemExit, match=r"--num-workers 2 x --cpus-per-worker 1 leave none of this machine's 2 "
                                         r"CPUs.*use --cpus-per-worker 0.5"):
        job.main(["--train-data", str(tmp_path), "--storage", str(tmp_path), "--name", "busy", "--model-size", "tiny",
                  "--num-workers", "2", "--cpus-per-worker", "1"])


def test_a_local_run_with_relative_paths_and_default_cpus_per_worker_trains(job, dataset, tmp_path, monkeypatch,
                                                                            caplog):
    """Two workers on the 2-CPU test cluster get half a CPU each, leaving one for Ray Data; relative
    paths (data, storage, the model to start from) reach the workers, which Ray Train runs in a
    directory of their own."""
    monkeypatch.chdir(tmp_path)
    init = load_model(save_tiny_model(tmp_path / "init", seed=3))
    caplog.set_level("INFO", logger="ansray.training")
    summary = job.main(["--train-data", os.path.relpath(dataset), "--storage", "runs", "--name", "fitted",
                        "--init", "init", "--num-workers", "2", "--batch-size", "2",
                        "--segment-seconds", "0.5", "--epochs", "1", "--steps-per-epoch", "2", "--valid-segments", "4",
                        "--no-quality-metrics", "--loss-mode", "SiSNR"])
    assert summary.metrics["step"] == 2
    assert "--cpus-per-worker 0.5: 2 workers on this machine's 2 CPUs" in caplog.text
    checkpoint = tmp_path / "runs" / "fitted" / checkpoint_dir_name(2) / CHECKPOINT_NAME
    assert load_model(str(checkpoint)).config == init.config  # not the official size, the default without --init


@pytest.mark.parametrize("metrics, checkpoint", [({}, None), ({"step": 4, "skipped_steps": 0}, "/runs/x/checkpoint-4")])
def test_a_run_that_ends_without_its_final_checkpoint_exits_non_zero(job, ray_cluster, tmp_path, monkeypatch,
                                                                     metrics, checkpoint):
    from ansray.training.trainer import TrainingSummary

    # What Ray's result holds when the state turned non-finite: no checkpoint, or only an early one.
    monkeypatch.setattr(job, "run_training", lambda cfg: TrainingSummary(cfg.run_uri, metrics, checkpoint))
    with pytest.raises(SystemExit, match=r"the run ended without a checkpoint of step 6") as exit_info:
        job.main(["--train-data", str(tmp_path), "--storage", str(tmp_path), "--name", "broken", "--model-size",
                  "tiny", "--epochs", "1", "--steps-per-epoch", "6", "--cpus-per-worker", "0.5"])
    assert exit_info.value.code != 0


def test_steps_skipped_on_overflowing_input_are_counted_and_leave_the_checkpoints_usable(job, ray_cluster, tmp_path):
    """Every training pair is finite but so loud (x1e37) that the forward pass overflows: each step is
    skipped, BatchNorm keeps its statistics, and the run still ends with a checkpoint that says so."""
    rng = np.random.default_rng(3)
    manifests = {"train": [], "valid": []}
    for index in range(4):
        clean = synthetic_speech(rng, 1.0)
        noisy = clean + 0.05 * rng.standard_normal(clean.shape).astype(np.float32)
        for split, gain in (("train", 1e37), ("valid", 1.0)):
            paths = {side: str(tmp_path / split / side / f"{index}.wav") for side in ("noisy", "clean")}
            write_audio(paths["noisy"], gain * noisy, 16000, format="WAV", subtype="FLOAT")
            write_audio(paths["clean"], clean, 16000, format="WAV", subtype="FLOAT")
            manifests[split].append(json.dumps({"input_filepath": paths["noisy"], "target_filepath": paths["clean"]}))
    for split, lines in manifests.items():
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")

    summary = job.main(["--train-data", str(tmp_path / "train.jsonl"), "--valid-data", str(tmp_path / "valid.jsonl"),
                        "--storage", str(tmp_path / "runs"), "--name", "loud", "--model-size", "tiny",
                        "--num-workers", "1", "--batch-size", "2", "--segment-seconds", "0.5", "--epochs", "1",
                        "--steps-per-epoch", "3", "--valid-segments", "4", "--no-quality-metrics"])

    assert summary.metrics["step"] == 3 and summary.metrics["skipped_steps"] == 3
    assert summary.checkpoint is not None and np.isfinite(summary.metrics["valid_loss"])
    model = load_model(str(tmp_path / "runs" / "loud" / checkpoint_dir_name(3) / CHECKPOINT_NAME))
    assert all(torch.isfinite(value).all() for value in model.state_dict().values() if value.is_floating_point())
