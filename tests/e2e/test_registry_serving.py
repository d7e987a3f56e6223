"""A real `bentoml serve` serves what the MLflow registry's alias names: after a promotion
and a restart the new version, after a rollback and a restart the old one; `GET /model`
and `har_model_info` say which (embedded SQLite store in a temporary folder)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from har.runtime import model_store
from tests.helpers.servers import ROOT, bentoml_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _har(env: dict[str, str], *args: str) -> str:
    """``python -m har ARGS`` in ``env``; its stdout (fails the test on a non-zero exit)."""
    out = subprocess.run(
        [sys.executable, "-m", "har", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def _served(env: dict[str, str], tmp_path: Path) -> tuple[dict, str]:
    """``GET /model`` and the ``har_model_info`` lines of a server started on ``env``."""
    with bentoml_serve(env, log_dir=tmp_path) as server:
        model = json.loads(_get(f"{server.url}/model"))
        info = [x for x in _get(f"{server.url}/metrics").splitlines() if "har_model_info{" in x]
    return model, "\n".join(info)


def test_the_alias_holder_is_served_across_promote_and_rollback(tmp_path: Path) -> None:
    import os

    # A model store of its own: the versions imported here are named like the bundled
    # model, and in the session's store they would become its ``har-cnn-bilstm:latest``.
    home = tmp_path / "home"
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "HAR_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "HAR_MODEL_URI": "models:/har-cnn-bilstm@champion",
        "HAR_PROFILE_DIR": str(tmp_path / "profiles"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    card = str(model_store.BUNDLED_CARD)
    model = str(model_store.BUNDLED_MODEL)
    assert _har(env, "register", model, "--card", card).splitlines()[-1] == "har-cnn-bilstm/1"
    _har(env, "promote", "har-cnn-bilstm", "1")
    assert _har(env, "register", model, "--card", card).splitlines()[-1] == "har-cnn-bilstm/2"

    first, info = _served(env, tmp_path)
    assert first["registry"]["version"] == "1"
    assert first["registry"]["alias"] == "champion"
    assert first["registry"]["name"] == "har-cnn-bilstm" and first["registry"]["run_id"]
    assert 'version="1"' in info and 'alias="champion"' in info

    _har(env, "promote", "har-cnn-bilstm", "2")  # same weights: passes the gate
    second, info = _served(env, tmp_path)
    assert second["registry"]["version"] == "2"
    assert second["tag"] != first["tag"]
    assert 'version="2"' in info

    _har(env, "rollback", "har-cnn-bilstm")
    third, _ = _served(env, tmp_path)
    assert third["registry"]["version"] == "1"
    assert third["tag"] == first["tag"]  # the same version is the same stored model
