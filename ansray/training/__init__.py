"""Distributed FRCRN training on Ray Train: config (the published recipe), Ray Data ingest, the
per-worker loop, checkpoints and the best model, and the run itself."""

from ansray.training.checkpoints import TrainingState, export_model
from ansray.training.config import TrainConfig
from ansray.training.datasets import build_datasets, cut_segments, find_pairs
from ansray.training.loop import train_loop_per_worker
from ansray.training.step import StepResult, StepSettings, train_step
from ansray.training.trainer import TrainingSummary, run_training

__all__ = [
    "StepResult",
    "StepSettings",
    "TrainConfig",
    "TrainingState",
    "TrainingSummary",
    "build_datasets",
    "cut_segments",
    "export_model",
    "find_pairs",
    "run_training",
    "train_loop_per_worker",
    "train_step",
]
