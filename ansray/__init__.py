"""ansray: distributed speech denoising with FRCRN on Ray.

The top-level names are imported on first use, so that I/O-only workers never pay for torch.
"""

import importlib

_EXPORTS = {
    "FRCRN": "ansray.model",
    "FRCRNConfig": "ansray.model",
    "load_model": "ansray.model",
    "save_model_dir": "ansray.model",
    "enhance": "ansray.enhancement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ansray' has no attribute {name!r}")
