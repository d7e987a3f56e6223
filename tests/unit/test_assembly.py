"""har/assembly.py: registry URIs pinned to the tags they resolved to, for every worker."""

from __future__ import annotations

import os

import pytest

from har.assembly import pin_resolved_models
from har.settings import Settings


@pytest.fixture(autouse=True)
def own_environment(monkeypatch):
    """pin_resolved_models writes os.environ: a copy here, so nothing leaks to later tests."""
    monkeypatch.setattr(os, "environ", dict(os.environ))


def test_a_resolved_alias_is_pinned_for_the_workers(monkeypatch):
    monkeypatch.setenv("HAR_MODEL_URI", "models:/har@champion")
    monkeypatch.setenv("HAR_SHADOW_MODEL_URI", "models:/har@challenger")
    monkeypatch.delenv("HAR_MODEL_TAG", raising=False)
    monkeypatch.delenv("HAR_SHADOW_MODEL_TAG", raising=False)
    s = Settings()
    pin_resolved_models(s, "har:mlflow-v3-abc", "har:mlflow-v4-def")
    assert os.environ["HAR_MODEL_TAG"] == "har:mlflow-v3-abc"
    assert os.environ["HAR_SHADOW_MODEL_TAG"] == "har:mlflow-v4-def"
    assert "HAR_MODEL_URI" not in os.environ and "HAR_SHADOW_MODEL_URI" not in os.environ
    # what a restarted worker reads: the pinned tags, no alias to resolve again
    again = Settings()
    assert again.model_uri is None and again.model_tag == "har:mlflow-v3-abc"
    assert again.shadow_model_uri is None and again.shadow_model_tag == "har:mlflow-v4-def"


def test_a_plain_tag_leaves_the_environment_alone(monkeypatch):
    monkeypatch.delenv("HAR_MODEL_URI", raising=False)
    monkeypatch.delenv("HAR_SHADOW_MODEL_URI", raising=False)
    monkeypatch.setenv("HAR_MODEL_TAG", "har-cnn-bilstm:latest")
    pin_resolved_models(Settings(), "har-cnn-bilstm:abc", None)
    assert os.environ["HAR_MODEL_TAG"] == "har-cnn-bilstm:latest"
