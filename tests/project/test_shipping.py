"""What the image relies on beyond the venv: the version without package metadata, the
runtime lock derived from requirements.lock, a shadow refused when its Bento lacks it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
import yaml

from har import __version__
from har.serving.assembly import SHADOW_SERVICE, require_shadow_in_bento
from har.serving.openapi import package_version
from tests.helpers.paths import ROOT


def test_version_has_one_source_readable_without_metadata(monkeypatch):
    assert importlib.metadata.version("har") == __version__  # pyproject reads har.__version__

    def no_metadata(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", no_metadata)  # as in the Bento
    assert package_version() == __version__


def test_runtime_lock_is_up_to_date_and_holds_runtime_packages_only():
    run = subprocess.run(
        [sys.executable, str(ROOT / "container" / "runtime_lock.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    def names(lock: str) -> set[str]:
        text = (ROOT / "container" / lock).read_text()
        return {line.split("==")[0].lower() for line in text.splitlines() if "==" in line}

    onnx, tf = names("requirements.lock"), names("requirements-tensorflow.lock")
    serving = {"bentoml", "onnxruntime", "whylogs", "matplotlib", "grpcio"}
    assert serving <= onnx and serving <= tf
    # a model served on ONNX Runtime: no TensorFlow, Keras or the exporters in its image
    assert not onnx & {"tensorflow-cpu", "keras", "onnx", "tf2onnx", "h5py"}
    assert {"tensorflow-cpu", "keras", "onnx", "tf2onnx"} <= tf and onnx < tf
    dev_only = {"pytest", "mlflow", "locust", "ruff", "mypy", "seglearn", "schemathesis"}
    assert not (onnx | tf) & dev_only


def test_runtime_lock_follows_markers_and_extras():
    sys.path.insert(0, str(ROOT / "container"))
    try:
        import runtime_lock
    finally:
        sys.path.pop(0)
    from packaging.requirements import Requirement

    found = runtime_lock.closure(
        [Requirement("bentoml"), Requirement("nonexistent; python_version<'3'")]
    )
    assert "bentoml" in found and "nonexistent" not in found
    assert "aiohttp" in found  # bentoml's own requirement, transitively
    assert "pytest" not in found  # only in an extra nobody asked for


def _bento(tmp_path, services):
    (tmp_path / "bento.yaml").write_text(
        yaml.safe_dump({"services": [{"name": s} for s in services]})
    )
    return str(tmp_path)


def test_shadow_needs_its_service_in_the_bento(tmp_path):
    with pytest.raises(SystemExit, match="built without"):
        require_shadow_in_bento("other:v1", _bento(tmp_path, ["har", "har-model"]))
    require_shadow_in_bento("other:v1", _bento(tmp_path, ["har", "har-model", SHADOW_SERVICE]))
    require_shadow_in_bento(None, _bento(tmp_path, ["har"]))  # no shadow: nothing to check
    require_shadow_in_bento("other:v1", None)  # `bentoml serve` from the source tree


def test_test_file_basenames_are_unique():
    """pytest imports test files by basename (rootdir import mode): two files of one name in
    different folders stop the whole run at collection, which only the full suite shows."""
    from collections import Counter

    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
