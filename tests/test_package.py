"""The package's public names: what the README documents works whatever was imported before."""

import importlib
import pkgutil

import numpy as np

import ansray


def test_ansray_enhance_is_the_function_after_every_submodule_is_imported():
    for module in pkgutil.walk_packages(ansray.__path__, "ansray."):
        importlib.import_module(module.name)
    assert callable(ansray.enhance) and ansray.enhance.__module__ == "ansray.enhancement"
    signal = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    out = ansray.enhance(signal, 16000, ansray.load_model(str(importlib.import_module("ansray.model.starter").STARTER_MODEL_DIR)))
    assert out.shape == signal.shape and np.isfinite(out).all()
    for name in ansray.__all__:
        assert getattr(ansray, name) is not None
