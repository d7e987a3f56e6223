"""Helpers of the model-lifecycle tests (tests/unit/lifecycle, tests/e2e/test_mlflow_server.py, tests/e2e/test_registry_serving.py):
a settings object on a given MLflow store, a degraded copy of the bundled model and a
small stratified evaluation subset of the committed held-out windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from har.runtime import model_store
from har.settings import Settings, get_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HELDOUT = FIXTURES / "heldout_windows.npz"


def use_store(monkeypatch, tracking_uri: str) -> Settings:
    """Point HAR_MLFLOW_TRACKING_URI (for the CLI's settings too) at ``tracking_uri``."""
    monkeypatch.setenv("HAR_MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.delenv("HAR_MODEL_URI", raising=False)
    get_settings.cache_clear()
    return get_settings()


def degraded_copy(dest: Path) -> Path:
    """The bundled model with its last Dense layer's weights and bias zeroed: a uniform
    softmax, so every window is predicted as the first class (same card, same shapes)."""
    import keras

    model = keras.saving.load_model(model_store.BUNDLED_MODEL, compile=False)
    last = model.layers[-1]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    model.save(dest)
    return dest


def small_eval(dest: Path, per_class: int = 4) -> Path:
    """The first ``per_class`` held-out windows of every class, in the committed layout."""
    with np.load(HELDOUT) as f:
        labels, windows, classes = f["labels"], f["windows"], f["classes"]
    keep = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in np.unique(labels)])
    np.savez(dest, windows=windows[keep], labels=labels[keep], classes=classes)
    return dest
