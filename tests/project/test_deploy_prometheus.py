"""deploy/prometheus, deploy/alertmanager, deploy/grafana and deploy/compose.yaml, checked
without a server: promtool / amtool on the shipped files, the alert unit tests
(deploy/prometheus/tests/), metric names against what the service exports, and the
Grafana dashboard's structure (no Grafana here: its queries run in tests/e2e/test_alerts.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.metrics import exported_names
from tests.helpers.paths import ROOT

DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
RULES = PROM / "alert-rules.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
#: BentoML 1.4.30's own metrics on /metrics (read from a real `bentoml serve service:HARService`).
BENTOML_METRICS = {
    "bentoml_service_request_total",
    "bentoml_service_request_in_progress",
    "bentoml_service_request_duration_seconds_bucket",
    "bentoml_service_request_duration_seconds_sum",
    "bentoml_service_request_duration_seconds_count",
    "bentoml_service_adaptive_batch_size_bucket",
    "bentoml_service_adaptive_batch_size_sum",
    "bentoml_service_adaptive_batch_size_count",
    "bentoml_service_last_request_timestamp_seconds",
}
#: Every alert the issue asks for (service level and monitoring).
ALERTS = {
    "HarServiceDown",
    "HarHigh5xxRate",
    "HarHighLatencyP95",
    "HarModelWorkerRestarted",
    "HarInputDrift",
    "HarDriftNotComputed",
    "HarLowMeanConfidence",
    "HarManyUncertainWindows",
    "HarHighFlipRate",
    "HarProfileRowsDropped",
    "HarProfilingStalled",
    # gRPC and the model's batches (har/monitoring/metrics.py)
    "HarGrpcHighErrorRate",
    "HarGrpcHighLatencyP95",
    "HarModelBatchesNotFilling",
}
METRIC = re.compile(r"\b((?:har|bentoml)_[a-z0-9_]+)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, (
        f"{name} missing: apt-get install prometheus prometheus-alertmanager (.ci/run does)"
    )
    return path


def _run(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _dashboard_exprs(dash: dict) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_promtool_accepts_the_config_and_loads_the_rule_file() -> None:
    out = _run(_tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))
    assert "SUCCESS: 1 rule files found" in out, out
    assert f"SUCCESS: {len(ALERTS)} rules found" in out, out


def test_promtool_checks_the_rules() -> None:
    _run(_tool("promtool"), "check", "rules", str(RULES))


def test_every_alert_is_unit_tested_firing_and_silent_on_an_idle_service() -> None:
    names = {r["alert"] for r in _rules()}
    assert names == ALERTS
    tests = [
        t
        for f in sorted((PROM / "tests").glob("*.yml"))
        for t in yaml.safe_load(f.read_text())["tests"]
    ]
    fired = {a["alertname"] for t in tests for a in t["alert_rule_test"] if a.get("exp_alerts")}
    assert fired == ALERTS, ALERTS - fired
    idle = [t for t in tests if t["name"].startswith("healthy idle")]
    assert idle and {a["alertname"] for a in idle[0]["alert_rule_test"]} == ALERTS
    assert all(not a["exp_alerts"] for a in idle[0]["alert_rule_test"])
    files = [str(f) for f in sorted((PROM / "tests").glob("*.yml"))]
    out = _run(_tool("promtool"), "test", "rules", *files)
    assert "SUCCESS" in out and "FAILED" not in out, out


def test_alertmanager_config_is_valid() -> None:
    _run(_tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    known = set(exported_names()) | BENTOML_METRICS | {"up"}
    used = {m for r in _rules() for m in METRIC.findall(r["expr"])}
    for dash in DASHBOARDS:
        used |= {
            m for e in _dashboard_exprs(json.loads(dash.read_text())) for m in METRIC.findall(e)
        }
    assert used <= known, used - known
    assert any(m.startswith("bentoml_") for m in used) and any(m.startswith("har_") for m in used)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_structure(path: Path) -> None:
    dash = json.loads(path.read_text())
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in dash["panels"]:
        assert p["title"], p
        assert p["datasource"]["type"] == "prometheus" and p["datasource"]["uid"] in uids, p[
            "title"
        ]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] in uids, p["title"]
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys(), p["title"]
    all_uids = [json.loads(d.read_text())["uid"] for d in DASHBOARDS]
    assert len(all_uids) == len(set(all_uids))
    # the panels the issue asks for
    text = "\n".join(_dashboard_exprs(dash))
    for metric in (
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
        "bentoml_service_adaptive_batch_size_bucket",
        "har_predictions_total",
        "har_prediction_confidence_bucket",
        "har_drift_uncertain_share",
        "har_drift_flip_rate",
        "har_drift_score",
        "har_drift_threshold",
        "har_profile_rows_total",
        "har_profile_rows_dropped_total",
        "har_grpc_server_handled_total",
        "har_grpc_server_handling_seconds_bucket",
        "har_grpc_server_msg_received_total",
        "har_grpc_server_msg_sent_total",
        "har_grpc_server_open_streams",
        "har_model_call_rows_bucket",
        "har_model_call_seconds_bucket",
        "har_model_call_wait_seconds_bucket",
        "har_model_calls_in_flight",
        "har_model_callers",
        "har_shadow_queue_windows",
    ):
        assert metric in text, metric
    assert all(
        q in text
        for q in ("histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,")
    )


def test_compose_wires_the_shipped_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    svc = compose["services"]
    assert {"har", "prometheus", "alertmanager", "grafana"} <= svc.keys()
    # Prometheus: the config folder is mounted where the config's relative rule path points
    prom_cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert prom_cfg["rule_files"] == ["alert-rules.yml"]
    assert "./prometheus:/etc/prometheus:ro" in svc["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in svc["prometheus"]["command"]
    (job,) = prom_cfg["scrape_configs"]
    assert job["job_name"] == "har" and job["static_configs"][0]["targets"] == ["har:3000"]
    assert prom_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    # volumes for profiles and Prometheus data
    assert "profiles:/home/bentoml/logs" in svc["har"]["volumes"]
    assert any(v.endswith(":/prometheus") for v in svc["prometheus"]["volumes"])
    assert {"profiles", "prometheus-data"} <= compose["volumes"].keys()
    # Grafana: provisioning mounted, admin password from the environment with no default
    password = svc["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]*\}", password), password
    vols = svc["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in vols
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in vols
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/har.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    for name in ("prometheus", "alertmanager", "grafana"):
        for v in svc[name]["volumes"]:
            src = v.split(":")[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), v
