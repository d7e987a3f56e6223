"""The lifecycle commands against a real `mlflow server` over HTTP (own SQLite backend and
artifact folder, artifacts proxied by the server), started on a free port and stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from har.cli import main
from har.lifecycle import aliases, store
from har.lifecycle.resolve import bento_tag
from har.lifecycle.served import served_registry_info
from har.runtime import model_store
from har.runtime.model_store import stored_labels
from har.settings import get_settings
from tests.helpers.lifecycle import degraded_copy, small_eval, use_store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{d / 'backend.db'}",
        "--artifacts-destination", str(d / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = (d / "server.log").open("wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(d / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 180 s")
            time.sleep(1)
        yield url, d
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_lifecycle_over_http(capsys, monkeypatch, tmp_path, mlflow_server):
    url, folder = mlflow_server
    settings = use_store(monkeypatch, url)
    model, card = model_store.BUNDLED_MODEL, model_store.BUNDLED_CARD
    bad_model = degraded_copy(tmp_path / "degraded.keras")
    data = small_eval(tmp_path / "eval.npz")

    versions = []
    for m in (model, bad_model, model):
        rc, out, _ = run(capsys, "register", m, "--card", card, "--name", "remote")
        assert rc == 0
        versions.append(out.strip().splitlines()[-1].split("/")[1])
    good, bad, again = versions
    assert list((folder / "artifacts").rglob("model.keras")), "artifacts go through the server"

    assert run(capsys, "promote", "remote", good, "--eval-data", data)[0] == 0
    rc, out, _ = run(capsys, "promote", "remote", bad, "--eval-data", data)
    assert rc == 1
    assert f"candidate version {bad}:" in out and f"holder    version {good}:" in out
    rc, out, _ = run(capsys, "promote", "remote", again, "--eval-data", data)
    assert rc == 0 and f"{good} -> {again}" in out

    c = store.client(settings)
    assert aliases.holder(c, "remote", "champion") == again
    rc, out, _ = run(capsys, "rollback", "remote")
    assert rc == 0 and aliases.holder(c, "remote", "champion") == good

    rc, out, _ = run(capsys, "models", "remote")
    assert rc == 0 and len(out.strip().splitlines()) == 4  # header + 3 versions

    monkeypatch.setenv("HAR_MODEL_URI", "models:/remote@champion")
    get_settings.cache_clear()
    tags = [run(capsys, "ensure-model")[1].strip().splitlines()[-1] for _ in range(2)]
    sha = store.get_version(c, "remote", good).tags[store.SHA_TAG]
    assert tags == [bento_tag("remote", good, sha)] * 2
    info = served_registry_info(stored_labels(tags[0]))
    assert info["version"] == good and info["alias"] == "champion" and info["run_id"]
    get_settings.cache_clear()
