"""The HTTP service in-process (BentoML's ASGI app, model service as a local dependency):
every endpoint, and every client mistake answered with a 4xx naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from har.domain.calibration import apply_temperature
from har.domain.preprocessing import Preprocessor
from tests.helpers.paths import PRODUCTION, ROOT


@pytest.fixture(scope="module")
def client(service_client):
    return service_client


@pytest.fixture(scope="module")
def keras_ref(bundled_tag):
    from har.runtime import model_store

    loaded = model_store.load_model(bundled_tag)
    return loaded


def test_predict_matches_keras_on_heldout_windows(client, keras_ref, heldout_windows):
    x = heldout_windows["windows"][:24]
    r = client.post("/predict", json={"windows": x.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == keras_ref.tag
    preds = body["predictions"]
    assert len(preds) == len(x)
    classes = keras_ref.card.classes
    want = np.asarray(keras_ref.model(Preprocessor(keras_ref.card).scale(x), training=False))
    # calibration on (the default): Keras's softmax with the card's applied temperature, if any
    cal = keras_ref.card.calibration
    assert cal is not None  # the bundled model is imported with its calibration evidence
    assert body["calibrated"] is (cal.served_temperature is not None)
    if cal.served_temperature is not None:
        want = apply_temperature(want, cal.served_temperature)
    got = np.array([[p["probabilities"][c] for c in classes] for p in preds])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [p["activity"] for p in preds] == [classes[i] for i in want.argmax(1)]
    assert all(p["activity_id"] == classes.index(p["activity"]) for p in preds)
    np.testing.assert_allclose([p["confidence"] for p in preds], want.max(1), atol=1e-5)


def test_predict_converts_declared_units(client, heldout_windows):
    x = heldout_windows["windows"][:4].astype(np.float64)
    canonical = client.post("/predict", json={"windows": x.tolist()}).json()["predictions"]
    other = x.copy()
    other[..., :3] /= 9.80665e-3  # m/s² -> milli-g
    other[..., 3:] *= np.pi / 180  # deg/s -> rad/s
    r = client.post(
        "/predict", json={"windows": other.tolist(), "units": {"acc": "milli_g", "gyro": "rad/s"}}
    )
    assert r.status_code == 200, r.text
    converted = r.json()["predictions"]
    assert [p["activity"] for p in converted] == [p["activity"] for p in canonical]
    np.testing.assert_allclose(
        [p["confidence"] for p in converted], [p["confidence"] for p in canonical], atol=1e-4
    )


def _window(fill: object = 0.0) -> list:
    return [[fill] * 6 for _ in range(200)]


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"windows": [[[1, 2, 3]]]}, 400, "shape"),
        ({"windows": []}, 400, "shape"),
        ({"windows": [_window()[:199]]}, 400, "(1, 199, 6)"),
        ({"windows": [_window("abc")]}, 400, "windows"),
        ({"windows": [_window()], "units": {"acc": "furlong"}}, 400, "units"),
        ({"windows": [_window()], "units": {"gyro": "rpm"}}, 400, "gyro"),
        ({"units": {}}, 400, "windows"),
        ({"windows": [_window()] * 300}, 400, "too many windows"),
    ],
)
def test_predict_client_errors(client, payload, status, needle):
    r = client.post("/predict", json=payload)
    assert r.status_code == status, r.text
    assert needle in r.text


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_predict_non_finite_values(client, token):
    row = b"[" + b",".join([token] + [b"0"] * 5) + b"]"
    body = b'{"windows": [[' + b",".join([row] * 200) + b"]]}"
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "NaN or infinity" in r.text


def test_predict_not_json(client):
    r = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": "request body is not valid JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)"
    }


def test_oversized_body_is_refused_and_service_keeps_serving(client, heldout_windows):
    big = b'{"windows": [' + b" " * (9 * 1024 * 1024) + b"]}"
    r = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "too large" in r.json()["error"]
    ok = client.post("/predict", json={"windows": heldout_windows["windows"][:1].tolist()})
    assert ok.status_code == 200


def test_model_endpoint(client, keras_ref):
    r = client.get("/model")
    assert r.status_code == 200
    body = r.json()
    assert body["tag"] == keras_ref.tag
    assert body["card"]["classes"] == keras_ref.card.classes
    assert body["card"]["window"] == keras_ref.card.window
    assert len(body["card"]["scaler"]["mean"]) == 6


def test_predict_recording_canonical_csv(client):
    path = PRODUCTION / "session_canonical_100hz.csv"
    with path.open("rb") as f:
        r = client.post("/predict_recording", files={"file": ("session.csv", f, "text/csv")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["windows"] and body["segments"]
    assert sum(s["windows"] for s in body["segments"]) == len(body["windows"])
    starts = [w["start"] for w in body["windows"]]
    assert starts == sorted(starts)
    assert all(w["end"] - w["start"] == pytest.approx(4.0) for w in body["windows"])
    assert set(body["summary"]) == {s["activity"] for s in body["segments"]}


def test_predict_recording_matches_batch_scoring(client, keras_ref):
    """The service and `har predict` give the same timeline for the same file."""
    from har.core.offline import read_recording, score_recording
    from har.domain.timeline import TimelineOptions
    from har.settings import get_settings

    path = PRODUCTION / "session_canonical_100hz.csv"
    s = get_settings()
    rec = read_recording(path, align_tolerance_s=s.align_tolerance_s)
    offline = score_recording(
        rec,
        "x",
        keras_ref.card,
        keras_ref.model,
        max_fill=s.max_fill_samples,
        timeline=TimelineOptions.from_settings(s),
    )
    with path.open("rb") as f:
        served = client.post("/predict_recording", files={"file": f}).json()
    assert served["smoothing"] == offline["smoothing"] == s.smoothing
    drop = ("confidence",)  # the served model is XLA-compiled: last digits differ
    assert [{k: v for k, v in x.items() if k not in drop} for x in served["segments"]] == [
        {k: v for k, v in x.items() if k not in drop} for x in offline["segments"]
    ]
    np.testing.assert_allclose(
        [w["confidence"] for w in served["windows"]],
        [w["confidence"] for w in offline["windows"]],
        atol=1e-5,
    )


def test_predict_recording_garmin_pair(client):
    acc = PRODUCTION / "session-accelerometer_data.csv"
    gyro = PRODUCTION / "session-gyroscope_data.csv"
    with acc.open("rb") as a, gyro.open("rb") as g:
        r = client.post("/predict_recording", files={"accelerometer": a, "gyroscope": g})
    assert r.status_code == 200, r.text
    assert len(r.json()["windows"]) > 0


def _csv(rows: int, rate: float = 50.0) -> bytes:
    head = "timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n"
    return (head + "".join(f"{i / rate},0,0,9.8,1,2,3\n" for i in range(rows))).encode()


@pytest.mark.parametrize(
    ("files", "data", "needle"),
    [
        ({"file": ("r.csv", b"", "text/csv")}, {}, "empty"),
        ({"file": ("r.csv", b"\x00\xff garbage\n1,2", "text/csv")}, {}, "cannot read"),
        ({"file": ("r.csv", b"time,x\n1,2\n", "text/csv")}, {}, "missing column"),
        ({"file": ("r.csv", _csv(150), "text/csv")}, {}, "too short"),
        ({"file": ("r.csv", _csv(400), "text/csv")}, {"acc_unit": "furlong"}, "furlong"),
        ({"accelerometer": ("a.csv", _csv(400), "text/csv")}, {}, "'gyroscope' is missing"),
        (
            {"file": ("r.csv", _csv(400), "text/csv"), "gyroscope": ("g.csv", b"x", "text/csv")},
            {},
            "not both",
        ),
        ({}, {"acc_unit": "g"}, "no recording"),
    ],
)
def test_predict_recording_client_errors(client, files, data, needle):
    r = client.post("/predict_recording", files=files, data=data)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert "/tmp" not in r.json()["error"]  # server paths are not leaked


def test_openapi_documents_endpoints_with_examples(client):
    spec = client.get("/docs.json").json()
    for path in ("/predict", "/predict_recording", "/model", "/monitoring/drift"):
        assert path in spec["paths"], path
    text = json.dumps(spec["paths"]["/predict"])
    assert "example" in text


def _live_traffic_timers() -> int:
    import gc

    return sum(
        1
        for o in gc.get_objects()
        if type(o).__name__ == "TimerHandle"
        and not o.cancelled()
        and getattr(getattr(o, "_callback", None), "__name__", "") == "_set_timer_out"
    )


def test_traffic_timeout_timers_are_cancelled_when_requests_end(client):
    """BentoML 1.4.30 left one 120-s timer (holding the request's context) per request."""
    before = _live_traffic_timers()
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
        assert client.post("/predict", json={"windows": [[[0.0] * 6] * 200]}).status_code == 200
    assert _live_traffic_timers() - before <= 0


def test_traffic_timeout_still_answers_504_for_slow_requests():
    import asyncio
    import sys

    sys.path.insert(0, str(ROOT))
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    import service  # noqa: F401  (applies the fix at import, as in every worker)

    async def slow_app(scope, receive, send):
        await asyncio.sleep(5)

    async def fast_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(app, timeout):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        mw = TimeoutMiddleware(app, timeout=timeout)
        await mw({"type": "http", "method": "GET", "path": "/"}, receive, send)
        loop = asyncio.get_running_loop()
        pending = [h for h in loop._scheduled if not h.cancelled()]
        return sent, pending

    sent, pending = asyncio.run(call(slow_app, 0.05))
    assert sent[0]["status"] == 504
    sent, pending = asyncio.run(call(fast_app, 60))
    assert sent[0]["status"] == 200 and pending == []


def test_startup_heap_is_frozen_for_the_garbage_collector(client):
    """What the API worker built at start-up, up to its last step (the graceful-stop lease), is
    left out of collections; requests freeze nothing and what they leave is collectable
    (HTTP c=64: ~1.3x throughput, har/serving/workers.py). In-process the model worker's own
    freeze runs too; tests/unit/serving/test_workers.py checks the API worker's order."""
    import functools
    import gc

    factory = next(  # BentoML's app factory, behind its endpoint routes
        r.endpoint.func.__self__
        for r in client.app.routes
        if isinstance(getattr(r, "endpoint", None), functools.partial)
    )
    worker = factory._service_instance.worker
    startup = [worker, worker.scorer, worker.http, worker._lease]
    walked = {id(o) for o in gc.get_objects()}  # what collections walk: not the frozen
    assert all(gc.is_tracked(o) and id(o) not in walked for o in startup)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000
    bodies = [client.post("/predict", json={"windows": [_window()]}).json() for _ in range(3)]
    assert gc.get_freeze_count() <= frozen  # frozen objects freed, none added
    walked = {id(o) for o in gc.get_objects()}
    assert all(id(b) in walked for b in bodies)


@pytest.mark.parametrize("path", ["/monitoring/drift", "/monitoring/shadow"])
def test_read_only_routes_answer_a_bad_interval_with_400(client, path):
    """Raised below the route, answered by the read-only app's one InputError handler."""
    r = client.get(f"{path}?since=never")
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and "never" in r.json()["error"]
