"""The loop each Ray Train worker runs: build or load FRCRN, resume from the latest checkpoint, take
steps on its shard of the training stream, validate at every epoch end, report and checkpoint.

An epoch is `steps_per_epoch` steps, as ModelScope counts `train_iters_per_epoch`; the training
shard is read round and round (a new shuffle and new crops on each pass) for as long as needed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import posixpath
import sys
import tempfile
import time

import torch

from ansray.model import FRCRN, load_model, weights_digest
from ansray.precision import canonical_precision

from .checkpoints import (
    TrainingState,
    all_finite,
    checkpoint_dir_name,
    checkpoint_dirs,
    checkpoint_payload,
    read_best_metrics,
    read_newest_checkpoint,
    restore_rng_state,
    write_best,
    write_checkpoint_dir,
)
from .config import TrainConfig
from .step import StepSettings, all_workers_true, freeze_unused_parameters, train_step
from .validation import quality_metrics_available, validate

log = logging.getLogger("ansray.training")
BEST_METRIC = "valid_si_snr_improvement"


class EmptyShardError(RuntimeError):
    """A worker's training shard holds less than one batch."""


def build_model(cfg: TrainConfig) -> FRCRN:
    """FRCRN from `cfg.model_config`, or the `--init` weights through `load_model` (the released
    model or any ansray export); with both, the weights must fit the given architecture."""
    if cfg.init:
        return load_model(cfg.init, config=cfg.model, storage_options=cfg.storage_options)
    return FRCRN(cfg.model_config)


def endless_batches(shard, cfg: TrainConfig, device: torch.device):
    """(noisy, clean) [B, T] batches from a training shard, starting a new pass whenever one ends."""
    while True:
        batches = 0
        for batch in shard.iter_torch_batches(
            batch_size=cfg.batch_size, dtypes=torch.float32, device=device, drop_last=True,
            local_shuffle_buffer_size=max(cfg.shuffle_buffer_segments, cfg.batch_size),
        ):
            batches += 1
            yield batch["noisy"], batch["clean"]
        if batches == 0:
            raise EmptyShardError(f"a training pass gave no full batch of {cfg.batch_size} segments per worker; "
                                  f"use more data, fewer workers or a smaller --batch-size")


@dataclasses.dataclass
class EpochMeter:
    """Training-loss means and throughput since the last reset."""

    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
    loss: float = 0.0
    sisnr: float = 0.0

    def add(self, result, samples: int, seconds: float) -> None:
        self.seconds += seconds
        self.samples += samples
        if not result.skipped:
            self.steps += 1
            self.loss += result.loss
            self.sisnr += result.sisnr

    def metrics(self) -> dict[str, float]:
        return {
            "train_loss": self.loss / self.steps if self.steps else math.nan,
            "train_si_snr": -self.sisnr / self.steps if self.steps else math.nan,
            "samples_per_second": self.samples / self.seconds if self.seconds else math.nan,
        }


def configure_worker_logging() -> None:
    """INFO lines from ansray reach the driver's console through the worker's stderr."""
    logger = logging.getLogger("ansray")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def train_loop_per_worker(loop_config: dict) -> None:
    """Ray Train's `train_loop_per_worker`: `loop_config` holds the TrainConfig as a dict
    ("config") and the storage options ("storage_options"), kept apart so they are never logged."""
    import ray.train
    import ray.train.torch

    configure_worker_logging()
    cfg = dataclasses.replace(TrainConfig.from_dict(loop_config["config"]),
                              storage_options=loop_config.get("storage_options"))
    context = ray.train.get_context()
    rank = context.get_world_rank()
    device = ray.train.torch.get_device()

    torch.manual_seed(cfg.seed)
    net = build_model(cfg).to(device)
    frozen = freeze_unused_parameters(net)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad],
                                 lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.lr_factor,
                                                           patience=cfg.lr_patience)
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "float16" else None
    state = TrainingState()
    checkpoint = ray.train.get_checkpoint()
    resumed_from, unreadable = None, []
    if checkpoint is not None:
        newest = posixpath.basename(checkpoint.path.rstrip("/"))
        resumed_from, payload, rng, unreadable = read_newest_checkpoint(cfg.run_uri, newest, rank, cfg.storage_options)
        for error in unreadable if rank == 0 else ():
            log.error("unreadable checkpoint %s: %s; falling back to an older one", error.source, error.reason)
        state = restore(payload, rng, rank, cfg, net, optimizer, scheduler, scaler)
    else:
        torch.manual_seed(cfg.seed + rank)
    # New checkpoints must not reuse the directory of one that could not be read (see checkpoint_dir_name).
    taken = set(checkpoint_dirs(cfg.run_uri, cfg.storage_options)) if unreadable else set()
    state.best = better_best(state.best, read_best_metrics(cfg.run_uri, cfg.storage_options))
    session = {"resumed_from_step": state.step, "resumed_weights_digest": weights_digest(net),
               "resumed_from": resumed_from, "unreadable_checkpoints": ", ".join(error.source for error in unreadable)}
    if rank == 0:
        log.info("%s at step %d of %d: %s parameters trained (%d unused by the loss frozen), lr %.1e",
                 f"resuming from {resumed_from}" if checkpoint is not None else "starting", state.step, cfg.total_steps,
                 f"{sum(p.numel() for p in net.parameters() if p.requires_grad):,}", len(frozen),
                 optimizer.param_groups[0]["lr"])

    model = ray.train.torch.prepare_model(net)
    settings = StepSettings(cfg.loss_mode, cfg.clip_grad_norm, cfg.precision)
    batches = endless_batches(ray.train.get_dataset_shard("train"), cfg, device)
    valid_shard = ray.train.get_dataset_shard("valid")
    quality = cfg.quality_metrics and quality_metrics_available()
    end = cfg.final_step
    meter = EpochMeter()

    def report(metrics: dict, with_checkpoint: bool) -> None:
        metrics = {"step": state.step, "epoch": state.epoch, "lr": optimizer.param_groups[0]["lr"],
                   "skipped_steps": state.skipped_steps, **session, **metrics}
        save = with_checkpoint and all_workers_true(all_finite(net, optimizer), device)
        if with_checkpoint and not save:
            log.error("step %d: non-finite weights or optimizer state; no checkpoint written", state.step)
        with tempfile.TemporaryDirectory(prefix="ansray-checkpoint-") as folder:
            saved = None
            if save:
                payload = None
                if rank == 0:
                    payload = checkpoint_payload(net, optimizer, scheduler, scaler, state, cfg.identity())
                write_checkpoint_dir(folder, rank, payload)
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved,
                             checkpoint_dir_name=checkpoint_dir_name(state.step, taken) if saved else None)

    while state.step < end:
        started = time.perf_counter()
        noisy, clean = next(batches)
        result = train_step(model, optimizer, noisy, clean, settings, scaler)
        state.step += 1
        meter.add(result, len(noisy), time.perf_counter() - started)
        if result.skipped:
            state.skipped_steps += 1
            if rank == 0:
                log.warning("step %d skipped: non-finite loss %.4g or gradient norm %.4g (%d skipped so far)",
                            state.step, result.loss, result.grad_norm, state.skipped_steps)
        if state.step % cfg.steps_per_epoch == 0:
            state.epoch = state.step // cfg.steps_per_epoch
            metrics = meter.metrics()
            metrics.update(validate(net, valid_shard.iter_torch_batches(batch_size=cfg.batch_size, device=device),
                                    device=device, loss_mode=cfg.loss_mode, precision=cfg.precision,
                                    quality=quality, sample_rate=cfg.sample_rate))
            scheduler.step(metrics["valid_loss"] if math.isfinite(metrics["valid_loss"]) else metrics["train_loss"])
            value = metrics[BEST_METRIC]
            if math.isfinite(value) and (state.best is None or value > state.best["value"]):
                state.best = {"metric": BEST_METRIC, "value": value, "step": state.step, "epoch": state.epoch}
                if rank == 0 and all_finite(net):
                    write_best(cfg.run_uri, net, {**metrics, "step": state.step, "epoch": state.epoch},
                               cfg.storage_options)
            metrics["best_" + BEST_METRIC] = state.best["value"] if state.best else math.nan
            if rank == 0:
                log.info(epoch_line(state, cfg, metrics, optimizer.param_groups[0]["lr"]))
            report(metrics, with_checkpoint=True)
            meter = EpochMeter()
        elif state.step % cfg.checkpoint_every_steps == 0 or state.step == end:
            report(meter.metrics(), with_checkpoint=True)


def restore(payload: dict, rng: dict | None, rank: int, cfg: TrainConfig, net: FRCRN, optimizer, scheduler,
            scaler) -> TrainingState:
    """Loads a checkpoint (`read_checkpoint_dir`) into the model, optimizer, scheduler, scaler and this
    worker's random generators; returns the state to continue from."""
    net.load_state_dict(payload["model"], strict=True)
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    if rng is not None:
        restore_rng_state(rng)
    else:
        log.warning("no random-generator state for rank %d in the checkpoint (the run had fewer workers)", rank)
    now = cfg.identity()
    recorded = dict(payload["run_config"])
    if "precision" in recorded:  # checkpoints written before the names were unified say fp32, bf16, fp16
        recorded["precision"] = canonical_precision(recorded["precision"])
    changed = {k: (v, now.get(k)) for k, v in recorded.items() if now.get(k) != v}
    if changed and rank == 0:
        log.warning("resuming with settings that differ from the checkpoint's (checkpoint, now): %s; "
                    "optimizer state, including the learning rate, comes from the checkpoint", changed)
    return TrainingState(**payload["state"])


def better_best(state_best: dict | None, recorded: dict | None) -> dict | None:
    """The better of the checkpoint's best and the one recorded beside the checkpoints (a run can
    stop between writing the best model and reporting the checkpoint that would remember it)."""
    if recorded is None or not math.isfinite(recorded.get(BEST_METRIC, math.nan)):
        return state_best
    value = recorded[BEST_METRIC]
    if state_best is not None and state_best["value"] >= value:
        return state_best
    return {"metric": BEST_METRIC, "value": value, "step": recorded["step"], "epoch": recorded["epoch"]}


def epoch_line(state: TrainingState, cfg: TrainConfig, metrics: dict, lr: float) -> str:
    """One readable line per epoch, for people watching the run."""
    parts = [
        f"epoch {state.epoch}/{cfg.epochs} step {state.step}",
        f"train loss {metrics['train_loss']:.3f} (SI-SNR {metrics['train_si_snr']:.2f} dB)",
        f"valid loss {metrics['valid_loss']:.3f}",
        f"SI-SNRi {metrics['valid_si_snr_improvement']:.2f} dB (best {metrics['best_' + BEST_METRIC]:.2f} dB"
        + (f" at epoch {state.best['epoch']})" if state.best else ")"),
    ]
    if "valid_pesq_wb" in metrics:
        parts.append(f"PESQ-WB {metrics['valid_pesq_wb']:.2f}")
    if "valid_stoi" in metrics:
        parts.append(f"STOI {metrics['valid_stoi']:.3f}")
    parts += [f"lr {lr:.2e}", f"{state.skipped_steps} skipped steps",
              f"{metrics['samples_per_second']:.1f} samples/s/worker"]
    return ", ".join(parts)
