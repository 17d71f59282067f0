"""Imports of optional dependencies, each from a pyproject extra, with an error that names the extra to
install when the package is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def extra_hint(extra: str) -> str:
    return f'install the {extra} extra: pip install "ansray[{extra}]"'


def require_package(name: str, extra: str, needed_by: str = "ansray") -> ModuleType:
    """Imports `name`, which the pyproject extra `extra` provides; raises ImportError naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as missing:
        raise ImportError(f"{needed_by} needs the package {name!r}; {extra_hint(extra)}") from missing
