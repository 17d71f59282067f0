"""Runs a training job on the connected Ray cluster: datasets, `TorchTrainer`, storage, retries.

Checkpoints go to `RunConfig(storage_path=storage, name=name)`; rerunning the same config resumes
from the latest one (Ray Train restores a run it finds under that name), and a run whose worker
died is restarted from it up to `max_failures` times.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field

from .checkpoints import BEST_MODEL, read_best_metrics
from .config import TrainConfig
from .datasets import build_datasets
from ansray.io.arrow import arrow_filesystem
from .loop import train_loop_per_worker

log = logging.getLogger(__name__)


@dataclass
class TrainingSummary:
    """What a finished `run_training` call leaves: its last reported metrics, the latest checkpoint
    (a path on the storage), the retained checkpoints with their metrics in step order, and the
    best model's URI and metrics, if any."""

    run_uri: str
    metrics: dict
    checkpoint: str | None
    checkpoints: list[tuple[str, dict]] = field(default_factory=list)
    best_model: str | None = None
    best_metrics: dict | None = None

    def epochs(self) -> list[dict]:
        """Metrics of the retained epoch-end checkpoints (those that carry validation), by step."""
        return [metrics for _, metrics in self.checkpoints if "valid_loss" in metrics]


def run_config(cfg: TrainConfig):
    """Ray Train's RunConfig: local or remote storage (through the same fsspec options as the data),
    failure retries, and retention of the last `keep_checkpoints` checkpoints (the best model is
    kept apart by the loop)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig

    filesystem, path = arrow_filesystem(cfg.storage, cfg.storage_options)
    return RunConfig(
        name=cfg.name,
        storage_path=path,
        storage_filesystem=filesystem,
        failure_config=FailureConfig(max_failures=cfg.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
    )


def scaling_config(cfg: TrainConfig):
    from ray.train import ScalingConfig

    resources = {"CPU": cfg.cpus_per_worker} | ({"GPU": 1} if cfg.use_gpu else {})
    return ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=resources)


# Ray Data's mixing and decoding tasks take a whole CPU each: on a fixed-size cluster where the
# workers leave none, training waits for data forever (seen on a 2-CPU machine with 2 workers of 1 CPU).
DATA_CPUS = 1


def cpus_per_worker_that_fit(num_workers: int, cluster_cpus: float) -> float:
    """The most CPUs each worker can take while `DATA_CPUS` are left for Ray Data (0 or less when the
    cluster is too small for that), rounded down to Ray's resource precision."""
    return math.floor((cluster_cpus - DATA_CPUS) / num_workers * 1e4) / 1e4


def warn_if_no_cpu_left_for_data(cfg: TrainConfig) -> None:
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if cfg.num_workers * cfg.cpus_per_worker > cpus - DATA_CPUS:
        log.warning("the cluster has %g CPUs and the workers take %g: Ray Data needs %d left to decode and mix "
                    "audio, so training waits until CPUs are added; lower --cpus-per-worker (e.g. %g)",
                    cpus, cfg.num_workers * cfg.cpus_per_worker, DATA_CPUS,
                    max(cpus_per_worker_that_fit(cfg.num_workers, cpus), 0))


def with_absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its local paths made absolute: Ray Train runs each worker in a directory of its
    own, where a relative `init` or `storage` would name nothing, or somewhere else."""

    def absolute(uri: str | None) -> str | None:
        return os.path.abspath(uri) if uri and "://" not in uri else uri

    return dataclasses.replace(
        cfg, storage=absolute(cfg.storage), init=absolute(cfg.init), train_data=absolute(cfg.train_data),
        valid_data=absolute(cfg.valid_data), clean=tuple(map(absolute, cfg.clean)),
        noise=tuple(map(absolute, cfg.noise)), rir=tuple(map(absolute, cfg.rir)),
    )


def run_training(cfg: TrainConfig) -> TrainingSummary:
    """Trains (or resumes training) as `cfg` says, on the connected Ray cluster (ray.init first)."""
    from ray.train.torch import TorchTrainer

    cfg = with_absolute_paths(cfg)
    warn_if_no_cpu_left_for_data(cfg)
    trainer = TorchTrainer(
        train_loop_per_worker,
        # Storage options carry credentials: they travel to the workers apart from the config,
        # whose dict is what checkpoints and logs show.
        train_loop_config={"config": cfg.to_dict(), "storage_options": cfg.storage_options},
        scaling_config=scaling_config(cfg),
        run_config=run_config(cfg),
        datasets=build_datasets(cfg),
    )
    result = trainer.fit()
    best_metrics = read_best_metrics(cfg.run_uri, cfg.storage_options)
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None
    retained = sorted(((c.path, dict(m)) for c, m in result.best_checkpoints or []), key=lambda item: item[1]["step"])
    summary = TrainingSummary(cfg.run_uri, dict(result.metrics or {}), checkpoint, retained,
                              f"{cfg.run_uri}/{BEST_MODEL}" if best_metrics else None, best_metrics)
    log.info("run %s: step %s, latest checkpoint %s, best %s", cfg.run_uri, summary.metrics.get("step"),
             checkpoint, _best_text(best_metrics))
    return summary


def _best_text(best: dict | None) -> str:
    if not best or not math.isfinite(best.get("valid_si_snr_improvement", math.nan)):
        return "none"
    return f"SI-SNRi {best['valid_si_snr_improvement']:.2f} dB at epoch {best['epoch']}"
