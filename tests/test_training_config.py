"""TrainConfig and the train job's flags: defaults are the published FRCRN recipe."""

import importlib.util
from pathlib import Path

import pytest

from ansray.model import MODEL_SIZES, FRCRNConfig
from ansray.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def load_job():
    spec = importlib.util.spec_from_file_location("train_job", ROOT / "jobs" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_follow_the_published_recipe():
    cfg = TrainConfig(storage="/tmp/runs", name="run", train_data="/data")
    assert cfg.learning_rate == 1e-3
    assert cfg.weight_decay == 1e-5
    assert cfg.clip_grad_norm == 10.0
    assert cfg.batch_size == 12
    assert cfg.segment_seconds == 1.0 and cfg.segment_frames == 16000 and cfg.segment_mode == "fixed"
    assert cfg.loss_mode == "Mix"
    assert (cfg.lr_factor, cfg.lr_patience) == (0.98, 2)
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.seed) == (200, 2000, 20)
    assert cfg.valid_segments == 200 * 12
    assert cfg.model_config == FRCRNConfig()


def test_fine_tuning_defaults_to_a_tenth_of_the_learning_rate():
    cfg = TrainConfig(storage="/tmp/runs", name="run", train_data="/data", init="/models/frcrn")
    assert cfg.learning_rate == 1e-4
    assert TrainConfig(storage="s", name="n", train_data="d", init="m", lr=3e-4).learning_rate == 3e-4


def test_command_line_defaults_are_the_recipe():
    job = load_job()
    cfg = job.config_from_args(job.parse_args(["--train-data", "/data", "--storage", "/runs", "--name", "run"]))
    assert cfg == TrainConfig(storage="/runs", name="run", train_data="/data")


def test_command_line_flags_reach_the_config(tmp_path):
    job = load_job()
    config = tmp_path / "configuration.json"
    config.write_text('{"model": {"type": "speech_frcrn_ans_cirm_16k", "channels": 32, "model_depth": 8}}')
    args = job.parse_args([
        "--clean", "/speech", "--noise", "/noise", "--rir", "/rirs", "--storage", "s3://b/runs", "--name", "x",
        "--config", str(config), "--num-workers", "4", "--use-gpu", "--batch-size", "6", "--segment-seconds", "2",
        "--epochs", "3", "--steps-per-epoch", "10", "--lr", "5e-4", "--precision", "bf16", "--max-failures", "2",
        "--checkpoint-every-steps", "7", "--snr-range=-5,20",
    ])
    cfg = job.config_from_args(args)
    assert cfg.mixes_on_the_fly and cfg.rir == ("/rirs",)
    assert cfg.mix.percent_for_adding_reverb == 1.0 and (cfg.mix.snr_lower, cfg.mix.snr_upper) == (-5, 20)
    assert cfg.model == FRCRNConfig(channels=32, model_depth=8)
    assert (cfg.num_workers, cfg.use_gpu, cfg.batch_size, cfg.segment_frames) == (4, True, 6, 32000)
    assert (cfg.total_steps, cfg.learning_rate, cfg.precision, cfg.max_failures) == (30, 5e-4, "bfloat16", 2)
    assert cfg.checkpoint_every_steps == 7
    assert job.config_from_args(job.parse_args(
        ["--train-data", "d", "--storage", "s", "--name", "n", "--model-size", "small"])).model == MODEL_SIZES["small"]


def test_config_round_trips_without_credentials():
    cfg = TrainConfig(storage="s3://b/runs", name="n", clean=("s3://b/speech",), noise=("s3://b/noise",),
                      model=MODEL_SIZES["tiny"], storage_options={"key": "secret"})
    values = cfg.to_dict()
    assert values["storage_options"] is None
    assert TrainConfig.from_dict(values) == TrainConfig(**{**cfg.__dict__, "storage_options": None})


@pytest.mark.parametrize("values, message", [
    ({}, "either train_data"),
    ({"train_data": "d", "clean": ("c",), "noise": ("n",)}, "either train_data"),
    ({"clean": ("c",)}, "both clean and noise"),
    ({"train_data": "d", "rir": ("r",)}, "rir sources only"),
    ({"train_data": "d", "precision": "fp16"}, "float16 needs a GPU"),
    ({"train_data": "d", "segment_seconds": 0.01}, "shorter than one STFT window"),
    ({"train_data": "d", "segment_mode": "overlap"}, "segment_mode"),
])
def test_inconsistent_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(storage="s", name="n", **values)
