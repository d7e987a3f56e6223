"""A shadow model on a real `bentoml serve`: the served model as its own shadow agrees on
every window; a degraded copy (one class's output bias raised) disagrees, and both the
endpoint and /metrics count every window the clients sent, also when two API workers
(HAR_API_WORKERS=2) each served part of them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.servers import ROOT, bentoml_serve

HELDOUT = ROOT / "tests" / "fixtures" / "heldout_windows.npz"
REQUESTS = [30, 1, 29, 60, 30]  # 150 windows, one request above max_batch_size (64 here)
ENV = {"HAR_MAX_BATCH_SIZE": "64", "HAR_SHADOW_MIN_WINDOWS": "100"}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def _predict(url: str, windows: np.ndarray) -> list[str]:
    body = json.dumps({"windows": windows.tolist()}).encode()
    req = urllib.request.Request(f"{url}/predict", body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return [p["activity"] for p in json.loads(r.read())["predictions"]]


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as r:
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _serve_and_compare(
    env: dict[str, str],
    tmp_path: Path,
    requests: list[int] = REQUESTS,
    clients: int = 1,
    workers: int = 1,
) -> tuple[dict, str, list[str]]:
    """Send ``requests`` (window counts) from ``clients`` threads to a server with ``env``;
    its shadow answer once every window is in. The kernel, not the test, picks which API
    worker accepts a connection, so the whole set is sent again (at most 8 rounds) until
    ``workers`` API workers have counted some."""
    with np.load(HELDOUT) as f:
        windows = f["windows"].astype(np.float32)
    bounds = np.cumsum([0, *requests])
    bodies = [windows[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    profiles = tmp_path / "profiles"  # this server's own shadow counts
    with bentoml_serve({**ENV, **env}, log_dir=tmp_path, profile_dir=profiles) as server:
        served: list[str] = []
        for _ in range(8):
            with ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(lambda w: _predict(server.url, w), bodies))
            assert [len(x) for x in answers] == requests  # every client got its answer
            served += [activity for answer in answers for activity in answer]
            deadline = time.monotonic() + 60
            while True:
                a = _get(f"{server.url}/monitoring/shadow")
                if a["windows"] + a["dropped"] >= len(served) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if a["workers"] >= workers:
                break
        counted = {
            k: _metric(server.url, f"har_shadow_{k}_total")
            for k in ("windows", "agreements", "disagreements", "windows_dropped")
        }
        panel = {m: _metric(server.url, m) for m in _shadow_panel_metrics()}
        return a | {"metrics": counted, "panel": panel}, server.log_tail(), served


def _shadow_panel_metrics() -> set[str]:
    """The metrics the Grafana dashboard's shadow panel queries."""
    dash = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "har-service.json").read_text())
    (panel,) = [p for p in dash["panels"] if p["title"].startswith("Shadow model")]
    return {m for t in panel["targets"] for m in re.findall(r"\bhar_shadow_[a-z_]+", t["expr"])}


@pytest.fixture(scope="module")
def degraded_tag(bundled_tag: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of the bundled model whose first class's output bias is raised by 8
    (about 4 in 10 held-out windows change class), imported with `har import-model`."""
    from har.runtime import model_store

    d = tmp_path_factory.mktemp("degraded")
    script = (
        "import sys, keras\n"
        "m = keras.saving.load_model(sys.argv[1])\n"
        "k, b = m.layers[-1].get_weights(); b[0] += 8.0\n"
        "m.layers[-1].set_weights([k, b]); m.save(sys.argv[2])\n"
    )
    keras_file = d / "degraded.keras"
    subprocess.run(
        [sys.executable, "-c", script, model_store.BUNDLED_MODEL, keras_file], check=True
    )
    cmd = [sys.executable, "-m", "har", "import-model", str(keras_file)]
    cmd += ["--card", str(model_store.BUNDLED_CARD), "--name", "har-degraded"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.e2e
@pytest.mark.slow
def test_the_served_model_as_shadow_agrees_on_every_window(
    bundled_tag: str, tmp_path: Path
) -> None:
    a, log, served = _serve_and_compare({"HAR_SHADOW_MODEL_TAG": bundled_tag}, tmp_path)
    assert len(served) == sum(REQUESTS)
    assert a["status"] == "ok", (a, log)
    assert a["model"] == a["primary_model"] == bundled_tag
    assert a["windows"] == sum(REQUESTS) and a["dropped"] == 0 and a["workers"] == 1, a
    assert a["agreement"] == 1.0 and a["disagreement"] == {}
    assert a["confidence"]["primary"] == pytest.approx(a["confidence"]["shadow"], abs=1e-6)
    m = a["metrics"]
    assert m["windows"] == m["agreements"] == sum(REQUESTS) and m["windows_dropped"] == 0
    # the dashboard's shadow panel queries metrics this server exports, with data
    assert a["panel"] and all(v > 0 for v in a["panel"].values()), a["panel"]


@pytest.mark.e2e
@pytest.mark.slow
def test_a_degraded_shadow_disagrees_with_counts_summed_over_two_api_workers(
    degraded_tag: str, tmp_path: Path
) -> None:
    requests = [10] * 15  # 150 windows a round from 4 clients at once, until both workers
    env = {"HAR_SHADOW_MODEL_TAG": degraded_tag, "HAR_API_WORKERS": "2"}
    a, log, served = _serve_and_compare(env, tmp_path, requests, clients=4, workers=2)
    total = len(served)
    assert a["status"] == "ok", (a, log)
    assert a["workers"] == 2, a  # the asked worker summed the other's counts with its own
    assert a["model"] == degraded_tag and a["model"] != a["primary_model"]
    assert a["windows"] == total and a["dropped"] == 0, a
    assert 0 < a["agreement"] < 1
    pairs = [(p, s, n) for p, row in a["disagreement"].items() for s, n in row.items()]
    assert {s for _, s, _ in pairs} == {"PEN"}  # the raised class takes windows from others
    disagreeing = sum(n for _, _, n in pairs)
    assert disagreeing == total - round(a["agreement"] * total) > 0
    assert a["confidence"]["shadow"] != pytest.approx(a["confidence"]["primary"])
    assert "PEN" not in {p for p, _, _ in pairs}
    m = a["metrics"]
    assert m["windows"] == total and m["disagreements"] == disagreeing
    assert m["agreements"] == total - disagreeing
