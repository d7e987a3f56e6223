"""Fixtures of the lifecycle tests: one embedded (SQLite) MLflow store per module, the
bundled model's files, a degraded copy of it and a small evaluation subset."""

from __future__ import annotations

import pytest

from har.runtime import model_store
from tests.helpers.lifecycle import degraded_copy, small_eval, use_store


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """Settings on a fresh embedded store (also what the CLI's get_settings() returns)."""
    d = tmp_path_factory.mktemp("mlruns")
    with pytest.MonkeyPatch.context() as mp:
        yield use_store(mp, f"sqlite:///{d / 'mlflow.db'}")
    from har.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def bundled() -> tuple:
    return model_store.BUNDLED_MODEL, model_store.BUNDLED_CARD


@pytest.fixture(scope="session")
def degraded(tmp_path_factory):
    return degraded_copy(tmp_path_factory.mktemp("degraded") / "degraded.keras")


@pytest.fixture(scope="session")
def eval_small(tmp_path_factory):
    return small_eval(tmp_path_factory.mktemp("eval") / "eval_small.npz")
