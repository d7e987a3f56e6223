"""gRPC and batching observability against a real ``bentoml serve`` (one server for the module):
traces exported with OTLP/HTTP to a receiver in the test, every dashboard panel under
HTTP + gRPC load in a real Prometheus, and injected gRPC faults reaching Alertmanager.

The server runs with ``HAR_TRACING=1`` (sample rate 1, its exporter pointed at
tests/helpers/otlp.py: a receiver decoding OTLP protobuf, since no collector binary
installs here), the served model as its own shadow (its calls are spans in the requests'
traces) and ``HAR_FAULT_INJECTION=1`` (a gRPC call with ``x-har-fault`` metadata
fails its model call: har/grpc/observability.py). Prometheus and Alertmanager are the
shipped configs at a 1 s scrape and evaluation (deploy/observe.py) with one change: the
gRPC error alert's ``for`` (5 m, tested by promtool in deploy/prometheus/tests/) is 0 here,
so the measured time is the pipeline's (metric → scrape → rule → Alertmanager).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from har.v1 import har_pb2, har_pb2_grpc
from tests.e2e.test_alerts import (
    DASHBOARD,
    _am_alerts,
    _observe,
    _query,
    _wait,
)
from tests.helpers.otlp import Receiver, Span, otlp_receiver
from tests.helpers.paths import ROOT, read_heldout
from tests.helpers.servers import Server, bentoml_serve, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GRPC_ALERT = "HarGrpcHighErrorRate"
#: Bound on seconds from the first failing gRPC call to the alert in Alertmanager (1 s
#: scrape and evaluation, ``for`` 0 here): generous for a loaded 2-core machine.
ALERT_WITHIN_S = 60.0
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return read_heldout()["windows"][:64].astype(np.float32)


@pytest.fixture(scope="module")
def traced(
    bundled_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Receiver]]:
    tmp = tmp_path_factory.mktemp("grpc-observability")
    with otlp_receiver() as receiver:
        env = {
            "HAR_PROFILE_DIR": str(tmp / "profiles"),
            "HAR_TRACING": "1",
            "HAR_TRACING_ENDPOINT": receiver.url,
            "HAR_TRACING_SAMPLE_RATE": "1",
            "HAR_FAULT_INJECTION": "1",
            "HAR_SHADOW_MODEL_TAG": bundled_tag,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export every 0.2 s (default 5 s)
        }
        with bentoml_serve(env, log_dir=tmp) as server:
            yield server, receiver


def _traceparent() -> tuple[str, str, str]:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-01"


def _children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


def _tree(spans: list[Span], root: Span, depth: int = 0) -> list[str]:
    lines = [f"{'  ' * depth}{root.name} [{root.service}]"]
    for child in sorted(_children(spans, root), key=lambda s: s.name):
        lines += _tree(spans, child, depth + 1)
    return lines


def _check_trace(
    receiver: Receiver, trace_id: str, parent: str, root_name: str, shadow_tag: str
) -> list[str]:
    """The trace's spans: the server span (child of the client's ``parent``) → the model
    call in the API worker → the model service's server span in the model worker; and the
    shadow's call of the same window, a child of the server span too (made after the
    answer, off the response path)."""
    wanted = {root_name, "har.model_call", "har.shadow_call"}

    def complete() -> list[Span]:
        spans = receiver.spans(trace_id)
        names = {s.name for s in spans}
        return spans if wanted <= names and len(spans) >= 4 else []

    spans = _wait(f"the spans of {root_name}", complete, 30)
    time.sleep(1.0)  # late spans of the same trace (the model worker exports on its own)
    spans = receiver.spans(trace_id)
    (root,) = [s for s in spans if s.name == root_name]
    assert root.parent_span_id == parent and root.kind == SERVER_KIND and root.service == "har"
    (call,) = [s for s in spans if s.name == "har.model_call"]
    assert call.parent_span_id == root.span_id and call.service == "har", _tree(spans, root)
    assert call.attributes["har.model"] == "served" and call.attributes["har.rows"] == 1
    model_side = _children(spans, call)
    assert model_side, _tree(spans, root)
    assert {s.service for s in model_side} == {"har-model"}
    assert all(s.kind == SERVER_KIND for s in model_side), model_side
    (shadow,) = [s for s in spans if s.name == "har.shadow_call"]
    assert shadow.parent_span_id == root.span_id and shadow.service == "har", _tree(spans, root)
    assert shadow.attributes["har.model"] == "shadow" and shadow.attributes["har.rows"] == 1
    assert shadow.attributes["har.model_tag"] == shadow_tag, shadow.attributes
    return _tree(spans, root)


def test_one_predict_and_one_grpc_predict_export_their_span_trees(
    traced: tuple[Server, Receiver], windows: np.ndarray, bundled_tag: str
) -> None:
    server, receiver = traced
    trace_id, parent, header = _traceparent()
    req = urllib.request.Request(
        f"{server.url}/predict",
        json.dumps({"windows": windows[:1].tolist()}).encode(),
        {"content-type": "application/json", "traceparent": header},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
    http_tree = _check_trace(receiver, trace_id, parent, "POST /predict", bundled_tag)

    trace_id, parent, header = _traceparent()
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        stub.Predict(_request(windows[:1]), metadata=(("traceparent", header),), timeout=60)
    grpc_tree = _check_trace(
        receiver, trace_id, parent, "har.v1.ActivityRecognition/Predict", bundled_tag
    )
    print("\n/predict trace:\n" + "\n".join(http_tree))
    print("gRPC Predict trace:\n" + "\n".join(grpc_tree))


def test_every_panel_has_data_under_http_and_grpc_load_and_grpc_faults_reach_alertmanager(
    traced: tuple[Server, Receiver], windows: np.ndarray, tmp_path: Path
) -> None:
    server, _ = traced
    obs = _observe()
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alert-rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == GRPC_ALERT:
                rule["for"] = "0s"
    rules_file = tmp_path / "alert-rules.yml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    prom_port, am_port = free_port(), free_port()
    am_proc = obs.start_alertmanager(tmp_path / "observe", am_port)
    cfg = obs.prometheus_config(
        [f"127.0.0.1:{server.http_port}"],
        f"127.0.0.1:{am_port}",
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    cfg["rule_files"] = [str(rules_file)]
    prom_proc = obs.start_prometheus(cfg, tmp_path / "observe", prom_port)
    prom, am = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
    try:
        obs.wait_ready(f"{prom}/-/ready", prom_proc)
        obs.wait_ready(f"{am}/-/ready", am_proc)
        _wait("Prometheus scrapes the service", lambda: _query(prom, 'up{job="har"} == 1'), 60)

        # HTTP + gRPC (unary, streams, GetModel, health) at once, then every panel
        errors = _load(server, windows, seconds=12.0)
        assert errors == [], errors[:5]
        assert _am_alerts(am) == [], _am_alerts(am)
        dash = json.loads(DASHBOARD.read_text())

        def empty_panels() -> list[tuple[str, str]]:
            empty = []
            for panel in dash["panels"]:  # the shadow's panel too: this server has one
                for target in panel["targets"]:
                    expr = target["expr"].replace("$__rate_interval", "1m")
                    if not _query(prom, expr):
                        empty.append((panel["title"], expr))
            return empty

        # a scrape or two after the load: retry briefly rather than sleep blindly
        deadline = time.monotonic() + 15
        while (empty := empty_panels()) and time.monotonic() < deadline:
            time.sleep(1)
        assert not empty, empty

        # injected faults: failing unary calls (INTERNAL, UNAVAILABLE) and failing streams
        t0 = time.monotonic()
        stop = threading.Event()
        codes: list[grpc.StatusCode] = []
        faulty = threading.Thread(target=_faults, args=(server, windows, stop, codes))
        faulty.start()
        try:
            alerts = _wait(
                f"{GRPC_ALERT} in Alertmanager", lambda: _am_alerts(am, GRPC_ALERT), ALERT_WITHIN_S
            )
        finally:
            stop.set()
            faulty.join(30)
        elapsed = time.monotonic() - t0
        print(
            f"\n{GRPC_ALERT} in Alertmanager {elapsed:.1f} s after the first failing gRPC call "
            f"({len(codes)} failed calls sent; scrape/eval 1 s, `for` 0 s)"
        )
        assert {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE} <= set(codes), codes
        methods = {a["labels"]["grpc_method"] for a in alerts}
        assert methods <= {"Predict", "StreamPredict"} and methods, alerts
        assert all(a["labels"]["severity"] == "critical" for a in alerts)
        assert all(a["labels"]["instance"] == f"127.0.0.1:{server.http_port}" for a in alerts)
        names = {a["labels"]["alertname"] for a in _am_alerts(am)}
        assert names == {GRPC_ALERT}, names
    finally:
        obs.stop(prom_proc, am_proc)


def _request(w: np.ndarray) -> har_pb2.PredictRequest:
    return har_pb2.PredictRequest(windows=[har_pb2.Window(values=x.ravel().tolist()) for x in w])


def _chunks(windows: np.ndarray, n: int) -> Iterator[har_pb2.SensorChunk]:
    """``n`` windows' samples as a live stream at 50 Hz (chunks of 50 samples)."""
    samples = windows[:n].reshape(-1, 6)
    t = 1_700_000_000.0 + np.arange(len(samples)) / 50.0
    for i in range(0, len(samples), 50):
        yield har_pb2.SensorChunk(
            timestamps=t[i : i + 50].tolist(), values=samples[i : i + 50].ravel().tolist()
        )


def _load(server: Server, windows: np.ndarray, seconds: float) -> list[str]:
    """HTTP /predict, gRPC Predict, StreamPredict, GetModel and health checks from 10
    threads for ``seconds``; the errors seen."""
    errors: list[str] = []
    end = time.monotonic() + seconds
    body = json.dumps({"windows": windows[:1].tolist()}).encode()

    def http() -> None:
        while time.monotonic() < end:
            req = urllib.request.Request(
                f"{server.url}/predict", body, {"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    r.read()
            except (urllib.error.URLError, OSError) as exc:
                errors.append(f"http: {exc}")

    def unary() -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = har_pb2_grpc.ActivityRecognitionStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            i = 0
            while time.monotonic() < end:
                try:
                    stub.Predict(_request(windows[i % 64 : i % 64 + 1]), timeout=60)
                    if i % 20 == 0:
                        stub.GetModel(har_pb2.GetModelRequest(), timeout=60)
                        health.Check(health_pb2.HealthCheckRequest(), timeout=60)
                except grpc.RpcError as exc:
                    errors.append(f"grpc: {exc.code()}")
                i += 1

    def stream() -> None:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = har_pb2_grpc.ActivityRecognitionStub(channel)
            while time.monotonic() < end:
                try:
                    replies = list(stub.StreamPredict(_chunks(windows, 8), timeout=60))
                    assert replies
                except grpc.RpcError as exc:
                    errors.append(f"stream: {exc.code()}")

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(f) for f in [http] * 4 + [unary] * 4 + [stream] * 2]
        for f in futures:
            f.result()
    return errors


def _faults(
    server: Server, windows: np.ndarray, stop: threading.Event, codes: list[grpc.StatusCode]
) -> None:
    """Failing gRPC calls until ``stop``: Predict with INTERNAL / UNAVAILABLE faults and a
    StreamPredict whose model call fails."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        i = 0
        while not stop.is_set():
            fault = ("internal", "unavailable")[i % 2]
            try:
                if i % 5 == 4:
                    list(
                        stub.StreamPredict(
                            _chunks(windows, 4), metadata=(("x-har-fault", "internal"),), timeout=60
                        )
                    )
                else:
                    stub.Predict(
                        _request(windows[:1]), metadata=(("x-har-fault", fault),), timeout=60
                    )
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
            i += 1
            time.sleep(0.05)
