"""Training checkpoints: what a run saves so that a rerun continues exactly, and the best model.

A Ray Train checkpoint directory `checkpoint-<step>` holds `checkpoint.pt` (written by rank 0:
model, optimizer, scheduler, loss scaler, step, epoch, best metric, run config) and one
`rng-rank<r>.pt` per worker. `checkpoint.pt` keeps the model in ansray's `{"model", "config"}`
layout, so `load_model` reads it directly. The best model by validation SI-SNR improvement is kept
apart, as `<storage>/<name>/best/model.pt`, so that keeping only the last N checkpoints never
loses it. A run resumes from the newest checkpoint that can be read, naming each one that cannot.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import random
import re
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch

from ansray.io import exists, fs_for, join_uri, read_bytes, write_bytes_atomic
from ansray.model import FRCRN, CheckpointError, load_model, save_model_dir
from ansray.model.checkpoint import load_payload

from .step import all_finite_tensors

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
BEST_MODEL = "best/model.pt"
BEST_METRICS = "best/metrics.json"
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)(?:-redo(\d+))?$")
FORMAT = "ansray-train/1"
PAYLOAD_KEYS = ("model", "config", "optimizer", "scheduler", "scaler", "state", "run_config")


def checkpoint_dir_name(step: int, taken: Collection[str] = ()) -> str:
    """`checkpoint-<step>`, or `checkpoint-<step>-redo<n>` when a checkpoint that could not be read
    holds the name: Ray's retention, deleting the old one, would delete the new one with it."""
    name, redo = f"checkpoint-{step:08d}", 0
    while name in taken:
        redo += 1
        name = f"checkpoint-{step:08d}-redo{redo}"
    return name


def checkpoint_order(name: str) -> tuple[int, int]:
    """(step, redo) of a checkpoint directory name; later checkpoints sort after earlier ones."""
    match = CHECKPOINT_DIR.match(name)
    return int(match.group(1)), int(match.group(2) or 0)


def rng_name(rank: int) -> str:
    return f"rng-rank{rank}.pt"


@dataclass
class TrainingState:
    """Where a run is. `epoch` counts completed epochs; `best` is {"metric", "value", "step",
    "epoch"} of the best validation so far, or None; `skipped_steps` counts non-finite steps."""

    step: int = 0
    epoch: int = 0
    skipped_steps: int = 0
    best: dict | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def checkpoint_payload(model: FRCRN, optimizer, scheduler, scaler, state: TrainingState, run_config: dict) -> dict:
    """What `checkpoint.pt` holds; the `model`/`config` part is the layout `load_model` reads."""
    return {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": model.config.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "state": state.to_dict(),
        "run_config": run_config,
    }


def rng_state() -> dict:
    """This process's random generators: torch (CPU and CUDA), numpy's global one, Python's."""
    keys, position, has_gauss, cached = np.random.get_state()[1:]
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }


def restore_rng_state(saved: dict) -> None:
    torch.set_rng_state(saved["torch"])
    if saved["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])
    numpy = saved["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))


def write_checkpoint_dir(folder: str, rank: int, payload: dict | None) -> None:
    """This worker's part of a checkpoint: its RNG state, and `checkpoint.pt` from rank 0."""
    os.makedirs(folder, exist_ok=True)
    torch.save(rng_state(), os.path.join(folder, rng_name(rank)))
    if payload is not None:
        torch.save(payload, os.path.join(folder, CHECKPOINT_NAME))


def read_checkpoint_dir(folder: str, rank: int, storage_options: dict | None = None) -> tuple[dict, dict | None]:
    """(`checkpoint.pt` payload, this rank's RNG state or None when the run had fewer workers) of a
    checkpoint directory on any storage. CheckpointError, naming the file, when a file is missing,
    empty, corrupt or not a training checkpoint; storage errors pass through (they may be transient).
    """
    uri = join_uri(folder, CHECKPOINT_NAME)
    if not exists(uri, storage_options):
        raise CheckpointError(uri, "missing")
    payload = load_payload(read_bytes(uri, storage_options), uri)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(uri, f"not an ansray training checkpoint (format {found!r})")
    missing = [key for key in PAYLOAD_KEYS if key not in payload]
    if missing:
        raise CheckpointError(uri, f"incomplete training checkpoint, without {', '.join(missing)}")
    rng_uri = join_uri(folder, rng_name(rank))
    rng = load_payload(read_bytes(rng_uri, storage_options), rng_uri) if exists(rng_uri, storage_options) else None
    return payload, rng


def checkpoint_dirs(run_uri: str, storage_options: dict | None = None) -> list[str]:
    """Names of the run's checkpoint directories, oldest first."""
    fs, path = fs_for(run_uri, storage_options)
    fs.invalidate_cache(path)
    if not fs.exists(path):
        return []
    names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False)]
    return sorted((name for name in names if CHECKPOINT_DIR.match(name)), key=checkpoint_order)


def read_newest_checkpoint(run_uri: str, newest: str, rank: int, storage_options: dict | None = None
                           ) -> tuple[str, dict, dict | None, list[CheckpointError]]:
    """The newest checkpoint of the run, `newest` (Ray's latest) or an older one, that can be read:
    (its directory name, payload, this rank's RNG state, the errors of the newer ones that could not).

    A rerun would otherwise fail on a corrupt latest checkpoint for good: Ray restores the latest
    one it registered, and refuses a run directory from which a registered checkpoint was deleted.
    """
    candidates = [name for name in checkpoint_dirs(run_uri, storage_options)
                  if checkpoint_order(name) <= checkpoint_order(newest)]
    if newest not in candidates:
        candidates.append(newest)
    unreadable = []
    for name in reversed(candidates):
        try:
            payload, rng = read_checkpoint_dir(join_uri(run_uri, name), rank, storage_options)
        except CheckpointError as error:
            unreadable.append(error)
            continue
        return name, payload, rng, unreadable
    reasons = "; ".join(str(error) for error in unreadable)
    raise CheckpointError(run_uri, f"no checkpoint of the run can be read ({reasons}); start a new run (--name)")


def all_finite(*modules_or_optimizers) -> bool:
    """True when every floating tensor of the given modules (parameters, buffers) and optimizers
    (moments) is finite."""
    for item in modules_or_optimizers:
        if isinstance(item, torch.nn.Module):
            tensors = list(item.state_dict().values())
        else:
            tensors = [v for state in item.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
        if not all_finite_tensors(tensors):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# The best model, beside Ray's checkpoints


def write_best(run_uri: str, model: FRCRN, metrics: dict, storage_options: dict | None = None) -> None:
    """Writes the best model (`load_model` layout), then its metrics, each atomically."""
    buffer = io.BytesIO()
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "config": model.config.to_dict(), "metrics": metrics}, buffer)
    write_bytes_atomic(join_uri(run_uri, BEST_MODEL), buffer.getvalue(), storage_options)
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(join_uri(run_uri, BEST_METRICS), text.encode(), storage_options)


def read_best_metrics(run_uri: str, storage_options: dict | None = None) -> dict | None:
    uri = join_uri(run_uri, BEST_METRICS)
    if not exists(uri, storage_options):
        return None
    return json.loads(read_bytes(uri, storage_options))


def latest_checkpoint_uri(run_uri: str, storage_options: dict | None = None) -> str | None:
    """`<run>/checkpoint-<step>/checkpoint.pt` of the newest checkpoint that holds one, or None."""
    for name in reversed(checkpoint_dirs(run_uri, storage_options)):
        uri = join_uri(run_uri, f"{name}/{CHECKPOINT_NAME}")
        if exists(uri, storage_options):
            return uri
    return None


def export_model(run_uri: str, dest: str, *, storage_options: dict | None = None,
                 dest_storage_options: dict | None = None) -> str:
    """Writes the run's best model (else its latest checkpoint) to `dest` as a ModelScope model dir
    (`configuration.json` + `pytorch_model.bin`) with `save_model_dir`; returns the source used."""
    source = join_uri(run_uri, BEST_MODEL)
    if not exists(source, storage_options):
        source = latest_checkpoint_uri(run_uri, storage_options)
        if source is None:
            raise FileNotFoundError(f"{run_uri}: no best model and no checkpoint to export")
    model = load_model(source, storage_options=storage_options)
    save_model_dir(model, dest, dest_storage_options)
    return source
