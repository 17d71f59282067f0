"""Builds the parity fixture's weights from its recipe (tests/fixtures/frcrn-reference/README.md).

The fixture's files are read from a source checkout's tests/fixtures; the wheel does not ship them."""

from __future__ import annotations

import functools
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from ansray.model.stft import stft_kernels

FIXTURE_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "frcrn-reference"
ANALYTIC_KEYS = ("stft.weight", "istft.weight", "istft.window", "istft.enframe")


def key_table() -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, alias_of) for each of the reference's state_dict keys, in order."""
    rows = []
    lines = (FIXTURE_DIR / "state_dict_keys.tsv").read_text().splitlines()[1:]
    for line in lines:
        key, shape, _dtype, alias_of = (line.split("\t") + [""])[:4]
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        rows.append((key, dims, alias_of))
    return rows


@functools.lru_cache(maxsize=1)
def _canonical_weights() -> dict[str, torch.Tensor]:
    stats = np.load(FIXTURE_DIR / "bn_running_stats.npz")
    analytic = stft_kernels(640, 640, "hanning")
    weights = {}
    for key, shape, alias_of in key_table():
        if alias_of:
            continue
        if key in ANALYTIC_KEYS:
            weights[key] = analytic[key]
            continue
        if key.endswith("num_batches_tracked"):
            weights[key] = torch.tensor(0, dtype=torch.int64)
            continue
        if key.endswith(("running_mean", "running_var")):
            weights[key] = torch.from_numpy(np.asarray(stats[key], dtype=np.float32))
            continue
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        if len(shape) >= 2:
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        elif key.endswith(".weight"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            value = 0.1 * rng.standard_normal(shape)
        weights[key] = torch.from_numpy(value.astype(np.float32))
    return weights


def reference_state_dict() -> dict[str, torch.Tensor]:
    """All 1692 keys, aliases included and sharing storage with their canonical key, as in a release."""
    canonical = _canonical_weights()
    return {key: canonical[alias_of or key].clone() for key, _shape, alias_of in key_table()}


def canonical_state_dict() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _canonical_weights().items()}


def cases() -> dict[str, np.ndarray]:
    with np.load(FIXTURE_DIR / "cases.npz") as data:
        return {k: data[k] for k in data.files}


def reference_losses() -> dict[str, float]:
    return json.loads((FIXTURE_DIR / "losses.json").read_text())
