"""Numeric precision by name, one vocabulary for inference and training: float32, bfloat16, float16.

Each name is the dtype `torch.autocast` runs the model in; float32 runs without autocast. The train job's
former spellings fp32, bf16 and fp16 are accepted as aliases and normalised where a config is made.
"""

from __future__ import annotations

import contextlib

import torch

AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
PRECISIONS = tuple(AUTOCAST_DTYPES)
ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def canonical_precision(name: str) -> str:
    """`name`, or the canonical name of its alias; ValueError for anything else."""
    canonical = ALIASES.get(name, name)
    if canonical not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {PRECISIONS} (or {', '.join(ALIASES)}), got {name!r}")
    return canonical


def autocast(device: torch.device, precision: str):
    """Autocast to `precision` on `device`'s type; nothing for float32."""
    dtype = AUTOCAST_DTYPES[canonical_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
