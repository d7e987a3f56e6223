"""The shipped monitoring stack against a real service: `bentoml serve` + Prometheus (1 s
scrape and evaluation, the shipped rules) + Alertmanager (the shipped config), all on free
ports with their own data directories (deploy/observe.py starts them).

Accelerometer values in milli-g declared as m/s² must reach Alertmanager as HarInputDrift
within a bounded time; every Grafana panel's PromQL must return data; a killed model
worker must show up as a new pid series (what HarModelWorkerRestarted relies on).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import psutil
import pytest

from tests.helpers.paths import ROOT, read_heldout
from tests.helpers.servers import bentoml_serve, free_port

G = 9.80665
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "har-service.json"
SHADOW_PANEL = "Shadow model"  # the one panel that is empty without a shadow model
#: Panels of gRPC calls: this test sends HTTP only; tests/e2e/test_grpc_observability.py
#: checks every panel under HTTP + gRPC load.
GRPC_PANEL = "gRPC"
#: Bound on seconds from the broken input to HarInputDrift in Alertmanager (1 s scrape
#: and evaluation, drift every 2 s): generous for a loaded 2-core machine.
ALERT_WITHIN_S = 90.0


def _observe() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "har_deploy_observe", ROOT / "deploy" / "observe.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _get(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _post(url: str, body: dict) -> int:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _query(prom: str, expr: str) -> list[dict]:
    ans = _get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert ans["status"] == "success", ans
    return ans["data"]["result"]


def _wait(what: str, check: Any, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


def _am_alerts(am: str, name: str | None = None) -> list[dict]:
    alerts = _get(f"{am}/api/v2/alerts")
    return [a for a in alerts if name is None or a["labels"]["alertname"] == name]


def _send(url: str, windows: np.ndarray, per_request: int = 25) -> None:
    for i in range(0, len(windows), per_request):
        status = _post(f"{url}/predict", {"windows": windows[i : i + per_request].tolist()})
        assert status == 200, status


@pytest.mark.e2e
@pytest.mark.slow
def test_broken_units_reach_alertmanager_and_every_panel_has_data(
    bundled_tag: str, tmp_path: Path
) -> None:
    obs = _observe()
    windows = read_heldout()["windows"].astype(np.float32)
    healthy, broken = windows[:32], windows[32:332].copy()
    broken[:, :, :3] *= 1000.0 / G  # milli-g, declared as m/s² (the default units)

    env = {
        "HAR_PROFILE_DIR": str(tmp_path / "profiles"),
        "HAR_DRIFT_EVERY_S": "2",
        "HAR_DRIFT_WINDOW_S": "60",
    }
    with bentoml_serve(env, log_dir=tmp_path) as server:
        prom_port, am_port = free_port(), free_port()
        am_proc = obs.start_alertmanager(tmp_path / "observe", am_port)
        cfg = obs.prometheus_config(
            [f"127.0.0.1:{server.http_port}"],
            f"127.0.0.1:{am_port}",
            scrape_interval="1s",
            evaluation_interval="1s",
        )
        prom_proc = obs.start_prometheus(cfg, tmp_path / "observe", prom_port)
        prom, am = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
        try:
            obs.wait_ready(f"{prom}/-/ready", prom_proc)
            obs.wait_ready(f"{am}/-/ready", am_proc)
            _wait("Prometheus scrapes the service", lambda: _query(prom, 'up{job="har"} == 1'), 60)
            rules = _get(f"{prom}/api/v1/rules")["data"]["groups"]
            assert sum(len(g["rules"]) for g in rules) == obs_rule_count()

            # healthy traffic: canonical windows, one client mistake, one recording
            _send(server.url, healthy)
            assert _post(f"{server.url}/predict", {"windows": [[[1.0, 2.0]]]}) == 400
            csv = ROOT / "data" / "production" / "session_canonical_100hz.csv"
            rec = urllib.request.Request(
                f"{server.url}/predict_recording",
                *_multipart(csv),
            )
            with urllib.request.urlopen(rec, timeout=120) as r:
                assert r.status == 200
            time.sleep(5)  # a few evaluations of a healthy service
            assert _am_alerts(am) == [], _am_alerts(am)

            t0 = time.monotonic()
            _send(server.url, broken)
            sent_s = time.monotonic() - t0
            alerts = _wait(
                "HarInputDrift in Alertmanager",
                lambda: _am_alerts(am, "HarInputDrift"),
                ALERT_WITHIN_S,
            )
            elapsed = time.monotonic() - t0
            print(
                f"\nHarInputDrift in Alertmanager {elapsed:.1f} s after the first broken "
                f"request (sending 300 windows took {sent_s:.1f} s; scrape/eval 1 s, "
                f"HAR_DRIFT_EVERY_S=2)"
            )
            assert alerts[0]["labels"]["severity"] == "warning"
            assert alerts[0]["labels"]["instance"] == f"127.0.0.1:{server.http_port}"
            # broken input may also lower the confidence; nothing else may fire
            names = {a["labels"]["alertname"] for a in _am_alerts(am)}
            assert names <= {"HarInputDrift", "HarLowMeanConfidence"}, names

            # every dashboard panel's PromQL returns data after this traffic (the shadow
            # panel's metrics are checked on a server with a shadow: tests/e2e/test_shadow.py)
            dash = json.loads(DASHBOARD.read_text())
            empty = []
            for panel in dash["panels"]:
                if panel["title"].startswith((SHADOW_PANEL, GRPC_PANEL)):
                    continue
                for target in panel["targets"]:
                    expr = target["expr"].replace("$__rate_interval", "1m")
                    if not _query(prom, expr):
                        empty.append((panel["title"], expr))
            assert not empty, empty

            # a killed model worker is restarted by BentoML with a new pid series
            arbiter = psutil.Process(server.proc.pid)
            (model,) = [p for p in arbiter.children() if "har-model" in " ".join(p.cmdline())]
            os.kill(model.pid, signal.SIGKILL)
            query = (
                'count(bentoml_service_last_request_timestamp_seconds{service_name="har-model"})'
            )

            def two_pids() -> bool:
                if _ready(server.url):  # the new worker's series appears at its first call
                    _send(server.url, healthy[:1])
                got = _query(prom, query)
                return bool(got) and float(got[0]["value"][1]) == 2

            # restart = a fresh worker start (XLA warm-up included): ~25 s alone, minutes on a loaded machine
            _wait("a new model-worker pid on /metrics", two_pids, 300, every=2)
        finally:
            obs.stop(prom_proc, am_proc)


def obs_rule_count() -> int:
    """The number of rules in the shipped rule file."""
    import yaml

    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alert-rules.yml").read_text())
    return sum(len(g["rules"]) for g in rules["groups"])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def _multipart(path: Path) -> tuple[bytes, dict[str, str]]:
    boundary = "har-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}
