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


@pytest.mark.parametrize(("env", "expected"), [(None, 0.020), ("7.5", 0.0075)])
def test_the_model_worker_sets_its_thread_switch_interval_the_api_worker_keeps_pythons(
    env, expected
):
    """What service.py runs in a worker (in a child process: configure patches BentoML
    for the whole process). configure (every worker, the supervisor) leaves Python's
    5 ms; model_worker sets HAR_MODEL_SWITCH_INTERVAL_MS. Only the model is stubbed."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        from types import SimpleNamespace
        from har import assembly
        from har.settings import Settings

        class Compiled:
            def __init__(self, *args, **kwargs): pass
            def warmup(self, background): pass

        assembly.lifecycle.ensure_served_model = lambda settings: "har-test:1"
        assembly.resolve_shadow_tag = lambda settings: None
        assembly.registry.load_model = lambda tag: SimpleNamespace(model=None)
        assembly.configure_tensorflow = lambda **kwargs: None
        assembly.CompiledModel = Compiled
        settings = assembly.configure(Settings()).settings
        after_configure = sys.getswitchinterval()
        assembly.model_worker(settings, "har-test:1")
        print(after_configure, sys.getswitchinterval())
        """
    )
    env_vars = {k: v for k, v in os.environ.items() if k != "HAR_MODEL_SWITCH_INTERVAL_MS"}
    if env is not None:
        env_vars["HAR_MODEL_SWITCH_INTERVAL_MS"] = env
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env_vars,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert float(out[0]) == pytest.approx(0.005)  # Python's default: API worker, supervisor
    assert float(out[1]) == pytest.approx(expected)
