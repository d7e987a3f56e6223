"""Shipping: the Bento's contents, and a short headless Locust run against a real server."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.servers import ROOT, bentoml_serve

BIN = Path(sys.executable).parent


def test_bento_carries_service_har_and_model_only(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home")}
    bundled = subprocess.run(
        [sys.executable, "-m", "har", "ensure-model"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    out = subprocess.run(
        [str(BIN / "bentoml"), "build", "-o", "tag"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tag = next(line for line in out.splitlines() if line.startswith("__tag__:"))[8:]
    name, version = tag.split(":")
    bento = tmp_path / "home" / "bentos" / name / version
    src = bento / "src"
    assert (src / "service.py").is_file()
    assert (src / "har" / "domain" / "preprocessing.py").is_file()
    assert (src / "har" / "serving" / "patches" / "guard.py").is_file()
    assert (src / "har" / "v1" / "har.proto").is_file()
    for unwanted in ("tests", "data", "load_tests", ".venv", "models", "container", "deploy"):
        assert not (src / unwanted).exists(), unwanted
    assert not list(src.rglob("__pycache__"))
    # BentoML 1.4 records the model by tag in bento.yaml; `bentoml containerize` and
    # `bentoml export` copy it from the store into the image / archive.
    spec = yaml.safe_load((bento / "bento.yaml").read_text())
    tags = [m["tag"] for m in spec["models"]]
    assert tags == [bundled], tags


@pytest.mark.e2e
def test_headless_locust_run_has_no_failures(bundled_tag, tmp_path):
    with bentoml_serve({"HAR_PROFILE_DIR": str(tmp_path / "p")}, log_dir=tmp_path) as server:
        env = {**os.environ, "HAR_GRPC_TARGET": server.grpc_target}
        cmd = [
            str(BIN / "locust"),
            "-f",
            "load_tests/locustfile.py",
            "--headless",
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "20s",
            "--host",
            server.url,
            "--csv",
            str(tmp_path / "locust"),
            "--only-summary",
            "--exit-code-on-error",
            "1",
        ]
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with (tmp_path / "locust_stats.csv").open() as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    assert int(rows[("POST", "/predict")]["Request Count"]) > 0
    assert int(rows[("grpc", "Predict")]["Request Count"]) > 0
    assert all(int(r["Failure Count"]) == 0 for r in rows.values())
