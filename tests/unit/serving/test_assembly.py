"""har/serving/assembly.py: registry URIs pinned to the tags they resolved to, for every worker.

The real ``os.environ`` is written (monkeypatch registers every variable first, so each
is restored afterwards), and a child process started without an explicit environment,
as ``bentoml serve`` starts its workers, is asked what it inherited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from har.serving.assembly import pin_resolved_models
from har.settings import Settings

KEYS = ("HAR_MODEL_URI", "HAR_MODEL_TAG", "HAR_SHADOW_MODEL_URI", "HAR_SHADOW_MODEL_TAG")


@pytest.fixture(autouse=True)
def restored_afterwards(monkeypatch):
    """Register the four variables with monkeypatch (``delenv`` of an unset variable alone
    registers nothing), so what ``pin_resolved_models`` writes is undone after each test."""
    for key in KEYS:
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


def _inherited() -> dict[str, str | None]:
    """The four variables as a child process started now sees them."""
    code = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"
    out = subprocess.run(
        [sys.executable, "-c", code, *KEYS], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_a_resolved_alias_is_pinned_for_the_workers(monkeypatch):
    assert isinstance(os.environ, os._Environ)  # the process environment, not a stand-in
    monkeypatch.setenv("HAR_MODEL_URI", "models:/har@champion")
    monkeypatch.setenv("HAR_SHADOW_MODEL_URI", "models:/har@challenger")
    s = Settings()
    pin_resolved_models(s, "har:mlflow-v3-abc", "har:mlflow-v4-def")
    assert os.environ["HAR_MODEL_TAG"] == "har:mlflow-v3-abc"
    assert os.environ["HAR_SHADOW_MODEL_TAG"] == "har:mlflow-v4-def"
    assert "HAR_MODEL_URI" not in os.environ and "HAR_SHADOW_MODEL_URI" not in os.environ
    # what a (re)started worker inherits: the pinned tags, no alias to resolve again
    assert _inherited() == {
        "HAR_MODEL_URI": None,
        "HAR_MODEL_TAG": "har:mlflow-v3-abc",
        "HAR_SHADOW_MODEL_URI": None,
        "HAR_SHADOW_MODEL_TAG": "har:mlflow-v4-def",
    }
    again = Settings()
    assert again.model_uri is None and again.model_tag == "har:mlflow-v3-abc"
    assert again.shadow_model_uri is None and again.shadow_model_tag == "har:mlflow-v4-def"


def test_a_plain_tag_leaves_the_environment_alone(monkeypatch):
    assert isinstance(os.environ, os._Environ)
    monkeypatch.setenv("HAR_MODEL_TAG", "har-cnn-bilstm:latest")
    pin_resolved_models(Settings(), "har-cnn-bilstm:abc", None)
    assert os.environ["HAR_MODEL_TAG"] == "har-cnn-bilstm:latest"
    assert _inherited() == {
        "HAR_MODEL_URI": None,
        "HAR_MODEL_TAG": "har-cnn-bilstm:latest",
        "HAR_SHADOW_MODEL_URI": None,
        "HAR_SHADOW_MODEL_TAG": None,
    }
