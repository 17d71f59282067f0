"""Training checkpoints: load_model reads their model part, RNG states come back, non-finite state is
caught, and export falls back to the latest checkpoint when a run has no best model."""

import random

import numpy as np
import pytest
import torch

from ansray.model import FRCRN, MODEL_SIZES, load_model, weights_digest
from ansray.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from ansray.training.checkpoints import (
    BEST_METRICS,
    CHECKPOINT_NAME,
    TrainingState,
    all_finite,
    checkpoint_dir_name,
    checkpoint_payload,
    export_model,
    latest_checkpoint_uri,
    read_best_metrics,
    read_checkpoint_dir,
    write_best,
    write_checkpoint_dir,
)
from ansray.training.loop import better_best

BEST = {"metric": "valid_si_snr_improvement", "value": 3.0, "step": 4, "epoch": 1}

def trained_parts():
    torch.manual_seed(0)
    model = FRCRN(MODEL_SIZES["tiny"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 1600)).wav_l2.pow(2).mean().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.98, patience=2)
    scheduler.step(1.0)
    return model, optimizer, scheduler


def write_run_checkpoint(run, step, model, optimizer, scheduler, name=None):
    state = TrainingState(step=step, epoch=1, skipped_steps=2, best=BEST)
    folder = run / (name or checkpoint_dir_name(step))
    write_checkpoint_dir(str(folder), 0, checkpoint_payload(model, optimizer, scheduler, None, state, {"lr": 1e-3}))
    write_checkpoint_dir(str(folder), 1, None)
    return folder


def test_checkpoint_holds_everything_to_resume_and_load_model_reads_it(tmp_path):
    model, optimizer, scheduler = trained_parts()
    folder = write_run_checkpoint(tmp_path, 6, model, optimizer, scheduler)

    assert weights_digest(load_model(str(folder / CHECKPOINT_NAME))) == weights_digest(model)
    payload, rng = read_checkpoint_dir(str(folder), 1)
    assert TrainingState(**payload["state"]) == TrainingState(6, 1, 2, BEST)
    restored = torch.optim.Adam(FRCRN(MODEL_SIZES["tiny"]).parameters(), lr=1.0)
    restored.load_state_dict(payload["optimizer"])
    assert restored.param_groups[0]["lr"] == 1e-3
    assert payload["scheduler"]["num_bad_epochs"] == scheduler.state_dict()["num_bad_epochs"]
    assert rng is not None and read_checkpoint_dir(str(folder), 2)[1] is None


def test_random_generators_continue_where_they_were_saved(tmp_path):
    from ansray.training.checkpoints import restore_rng_state

    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    write_checkpoint_dir(str(tmp_path), 0, None)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng_state(torch.load(tmp_path / "rng-rank0.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_non_finite_weights_or_moments_are_caught():
    model, optimizer, _ = trained_parts()
    assert all_finite(model, optimizer)
    next(iter(optimizer.state.values()))["exp_avg_sq"].view(-1)[0] = float("inf")
    assert not all_finite(model, optimizer) and all_finite(model)
    with torch.no_grad():
        model.unet.linear.conv_re.weight.view(-1)[0] = float("nan")
    assert not all_finite(model)


def test_export_writes_the_best_model_as_a_modelscope_dir(tmp_path):
    model, optimizer, scheduler = trained_parts()
    run = tmp_path / "run"
    write_run_checkpoint(run, 6, FRCRN(MODEL_SIZES["tiny"]), optimizer, scheduler)
    write_best(str(run), model, {"valid_si_snr_improvement": 4.5, "step": 4, "epoch": 1})
    assert read_best_metrics(str(run))["valid_si_snr_improvement"] == 4.5
    assert (run / BEST_METRICS).exists()

    assert export_model(str(run), str(tmp_path / "out")).endswith("best/model.pt")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {CONFIG_NAME, WEIGHTS_NAME}
    assert weights_digest(load_model(str(tmp_path / "out"))) == weights_digest(model)


def test_export_without_a_best_model_takes_the_latest_checkpoint(tmp_path):
    model, optimizer, scheduler = trained_parts()
    write_run_checkpoint(tmp_path, 4, FRCRN(MODEL_SIZES["tiny"]), optimizer, scheduler)
    write_run_checkpoint(tmp_path, 12, model, optimizer, scheduler)
    assert latest_checkpoint_uri(str(tmp_path)).endswith(f"{checkpoint_dir_name(12)}/{CHECKPOINT_NAME}")
    export_model(str(tmp_path), str(tmp_path / "out"))
    assert weights_digest(load_model(str(tmp_path / "out"))) == weights_digest(model)


def test_a_best_model_recorded_after_the_last_checkpoint_is_not_forgotten():
    in_checkpoint = {"metric": "valid_si_snr_improvement", "value": 2.0, "step": 10, "epoch": 1}
    recorded = {"valid_si_snr_improvement": 3.0, "step": 20, "epoch": 2}
    assert better_best(in_checkpoint, recorded)["value"] == 3.0
    assert better_best(in_checkpoint, None) is in_checkpoint
    assert better_best(dict(in_checkpoint, value=5.0), recorded)["value"] == 5.0
    assert better_best(None, recorded)["epoch"] == 2


def test_init_fine_tunes_from_an_export_with_its_architecture(tmp_path):
    from ansray.model import save_model_dir
    from ansray.training.config import TrainConfig
    from ansray.training.loop import build_model

    model, _, _ = trained_parts()
    save_model_dir(model, str(tmp_path / "export"))
    cfg = TrainConfig(storage=str(tmp_path), name="n", train_data="d", init=str(tmp_path / "export"))
    assert cfg.learning_rate == 1e-4
    assert weights_digest(build_model(cfg)) == weights_digest(model)


def test_export_job_writes_a_chosen_checkpoint(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "export_job", Path(__file__).resolve().parent.parent / "jobs" / "export_model.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    model, optimizer, scheduler = trained_parts()
    folder = write_run_checkpoint(tmp_path / "run", 8, model, optimizer, scheduler)
    job.main(["--checkpoint", str(folder / CHECKPOINT_NAME), "--output", str(tmp_path / "out")])
    assert weights_digest(load_model(str(tmp_path / "out"))) == weights_digest(model)


def test_resume_falls_back_past_unreadable_checkpoints_and_names_them(tmp_path):
    from ansray.training.checkpoints import read_newest_checkpoint

    model, optimizer, scheduler = trained_parts()
    for step in (4, 8, 12):
        write_run_checkpoint(tmp_path, step, model, optimizer, scheduler)
    newest = tmp_path / checkpoint_dir_name(12) / CHECKPOINT_NAME
    newest.write_bytes(newest.read_bytes()[:1000])  # a write cut short
    rng_of_8 = tmp_path / checkpoint_dir_name(8) / "rng-rank1.pt"
    rng_of_8.write_bytes(b"")

    name, payload, rng, unreadable = read_newest_checkpoint(str(tmp_path), checkpoint_dir_name(12), 1)

    assert name == checkpoint_dir_name(4) and payload["state"]["step"] == 4 and rng is not None
    assert [error.source for error in unreadable] == [str(newest), str(rng_of_8)]
    assert "truncated" in unreadable[0].reason and unreadable[1].reason == "empty file (0 bytes)"
    # Rank 0's files of step 8 are whole: it resumes from there.
    assert read_newest_checkpoint(str(tmp_path), checkpoint_dir_name(12), 0)[0] == checkpoint_dir_name(8)


def test_a_run_with_no_readable_checkpoint_is_refused_with_every_reason(tmp_path):
    from ansray.model import CheckpointError
    from ansray.training.checkpoints import read_newest_checkpoint

    model, optimizer, scheduler = trained_parts()
    folder = write_run_checkpoint(tmp_path, 4, model, optimizer, scheduler)
    torch.save({"format": "something else"}, folder / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match=r"no checkpoint of the run can be read.*not an ansray training"):
        read_newest_checkpoint(str(tmp_path), checkpoint_dir_name(4), 0)


def test_new_checkpoints_never_take_the_name_of_an_unreadable_one(tmp_path):
    taken = {checkpoint_dir_name(8), checkpoint_dir_name(8) + "-redo1"}
    assert checkpoint_dir_name(8, taken) == "checkpoint-00000008-redo2"
    assert checkpoint_dir_name(12, taken) == "checkpoint-00000012"
    model, optimizer, scheduler = trained_parts()
    for name in ("checkpoint-00000008-redo10", "checkpoint-00000008", "checkpoint-00000008-redo2"):
        write_run_checkpoint(tmp_path, 8, model, optimizer, scheduler, name)
    assert latest_checkpoint_uri(str(tmp_path)).endswith(f"checkpoint-00000008-redo10/{CHECKPOINT_NAME}")
