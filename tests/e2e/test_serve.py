"""End-to-end: a real `bentoml serve` (model service + API service), HTTP and gRPC, in what
only the dev server shows (its profile files, a user's model by tag, two API workers).

What a user calls on any target (predictions equal to Keras, gRPC, streams) is in
``tests/contract``, which runs against this server and the image alike.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import grpc
import pytest

from har.domain.preprocessing import Preprocessor
from har.runtime import model_store
from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.cards import USER_CLASSES
from tests.helpers.servers import bentoml_serve

pytestmark = pytest.mark.e2e


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, json.dumps(payload).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def served(bundled_tag, tmp_path_factory):
    logs = tmp_path_factory.mktemp("e2e")
    profiles = logs / "profiles"
    env = {
        "HAR_PROFILE_DIR": str(profiles),
        "HAR_PROFILE_INTERVAL_S": "5",
        "HAR_DRIFT_MIN_ROWS": "100000",
    }
    with bentoml_serve(env, log_dir=logs) as server:
        server.profiles = profiles
        yield server


def _drift(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/monitoring/drift", timeout=30) as r:
        return json.loads(r.read())


def test_metrics_and_drift_endpoints(served, heldout_windows):
    """Windows served show up in /metrics and, once flushed, in /monitoring/drift's rows;
    fewer rows than HAR_DRIFT_MIN_ROWS (set above any count here) give insufficient_data."""
    x = heldout_windows["windows"][:12]
    status, body = _post(f"{served.url}/predict", {"windows": x.tolist()})
    assert status == 200, body
    with urllib.request.urlopen(f"{served.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert "har_predictions_total" in text
    deadline = time.monotonic() + 60
    while (drift := _drift(served.url))["rows"] < len(x):  # profiles flushed every 5 s
        assert time.monotonic() < deadline, drift
        time.sleep(1)
    assert drift["status"] == "insufficient_data", drift


def test_clean_shutdown_flushes_every_served_window(bundled_tag, heldout_windows, tmp_path):
    """SIGTERM: the server exits 0 and the profiles hold one row per window served (HTTP and
    gRPC), with a profile interval far longer than the test (only the shutdown flushes)."""
    from har.monitoring import profiles, store

    folder = tmp_path / "profiles"
    env = {
        "HAR_PROFILE_DIR": str(folder),
        "HAR_PROFILE_INTERVAL_S": "3600",
        "HAR_PROFILE_FLUSH_S": "0",
    }
    x = heldout_windows["windows"][:10]
    with bentoml_serve(env, log_dir=tmp_path) as server:
        status, body = _post(f"{server.url}/predict", {"windows": x.tolist()})
        assert status == 200, body
        with grpc.insecure_channel(server.grpc_target) as ch:
            req = har_pb2.PredictRequest(windows=[har_pb2.Window(values=w.ravel()) for w in x[:7]])
            resp = har_pb2_grpc.ActivityRecognitionStub(ch).Predict(req, timeout=30)
            assert len(resp.predictions) == 7
        code = server.stop()
        assert code == 0, server.log_tail()
    files = store.list_profiles(folder)
    rows = sum(profiles.row_count(profiles.read_view(f.path)) for f in files)
    assert rows == 10 + 7


@pytest.fixture(scope="module")
def user_model_tag(user_model_files) -> str:
    """The thesis-style 11-class model imported through the CLI (``import-model``), as a user
    does: the last line it prints is the tag."""
    import subprocess
    import sys

    model, card = user_model_files
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "har",
            "import-model",
            str(model),
            "--card",
            str(card),
            "--name",
            "user-anxiety-model",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return out.strip().splitlines()[-1]


@pytest.mark.parametrize("runtime", ["onnx", "tensorflow"])
def test_user_model_serves_keras_probabilities_on_both_runtimes(
    user_model_files, user_model_tag, runtime, tmp_path
):
    """The same stored model on ONNX Runtime and on TensorFlow: probabilities equal to Keras
    on both, ``GET /model`` names the runtime, and on ONNX Runtime the model worker never
    imported TensorFlow (its own ``sys.modules``, and no TensorFlow library mapped)."""
    import numpy as np

    model = model_store.load_keras(user_model_files[0])
    card = model_store.ModelCard.from_file(user_model_files[1])
    x = np.random.default_rng(3).normal(size=(6, 200, 6)).astype(np.float32) * 4
    want = np.asarray(model(Preprocessor(card).scale(x), training=False))
    env = {
        "HAR_MODEL_TAG": user_model_tag,
        "HAR_RUNTIME": runtime,
        "HAR_PROFILE_DIR": str(tmp_path / "p"),
        "HAR_XLA": "0",
    }
    with bentoml_serve(env, log_dir=tmp_path) as server:
        status, body = _post(f"{server.url}/predict", {"windows": x.tolist()})
        assert status == 200, body
        assert body["model"] == user_model_tag
        got = [[p["probabilities"][c] for c in USER_CLASSES] for p in body["predictions"]]
        np.testing.assert_allclose(got, want, atol=1e-5)
        with urllib.request.urlopen(f"{server.url}/model", timeout=30) as r:
            info = json.loads(r.read())["runtime"]
        assert info["name"] == runtime
        assert info["tensorflow_imported"] is (runtime == "tensorflow")
        maps = [_maps(pid) for pid in server.worker_pids("har-model")]
        assert maps and all(("libtensorflow" in m) is (runtime == "tensorflow") for m in maps)
        code = server.stop()
    assert code == 0, server.log_tail()


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_two_api_workers_serve_http_and_grpc_and_flush_every_window(
    bundled_tag, heldout_windows, tmp_path
):
    """HAR_API_WORKERS=2: concurrent HTTP clients and separate gRPC connections are served
    by both workers (they share the HTTP socket; each binds the gRPC port with
    SO_REUSEPORT), and SIGTERM still flushes one profile row per window from each."""
    from concurrent.futures import ThreadPoolExecutor

    from har.monitoring import profiles, store

    folder = tmp_path / "profiles"
    env = {
        "HAR_API_WORKERS": "2",
        "HAR_PROFILE_DIR": str(folder),
        "HAR_PROFILE_INTERVAL_S": "3600",
        "HAR_PROFILE_FLUSH_S": "0",
    }
    x = heldout_windows["windows"][:5]

    def grpc_predict(target: str) -> int:
        with grpc.insecure_channel(target) as ch:  # a connection of its own
            req = har_pb2.PredictRequest(windows=[har_pb2.Window(values=w.ravel()) for w in x])
            return len(
                har_pb2_grpc.ActivityRecognitionStub(ch).Predict(req, timeout=60).predictions
            )

    with bentoml_serve(env, log_dir=tmp_path) as server:
        with ThreadPoolExecutor(8) as pool:
            http = list(
                pool.map(
                    lambda _: _post(f"{server.url}/predict", {"windows": x.tolist()}), range(16)
                )
            )
            grpc_counts = list(pool.map(lambda _: grpc_predict(server.grpc_target), range(8)))
        assert all(status == 200 and len(body["predictions"]) == 5 for status, body in http)
        assert grpc_counts == [5] * 8
        code = server.stop()
        assert code == 0, server.log_tail()
    files = store.list_profiles(folder)
    assert len({f.writer.split(".")[0] for f in files}) == 2, files  # both workers served
    rows = sum(profiles.row_count(profiles.read_view(f.path)) for f in files)
    assert rows == (16 + 8) * 5
