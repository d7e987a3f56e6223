"""HTTP as a user calls it, on the target: predictions equal the Keras model, recordings,
the model card, monitoring answers, probes and ``/metrics``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from har.domain.preprocessing import Preprocessor
from tests.helpers.multipart import upload
from tests.helpers.paths import ROOT

PRODUCTION = ROOT / "data" / "production"
SHORT = ROOT / "tests" / "fixtures"


def post_json(url: str, payload: object, timeout: float = 60) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, json.dumps(payload).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url: str, timeout: float = 60) -> tuple[int, str, str]:
    """(status, content type, body text) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("content-type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read().decode()


def test_predict_equals_keras_in_order(served, served_tag, reference, heldout_windows):
    model, card = reference
    x = heldout_windows["windows"][:16]
    status, body = post_json(f"{served.url}/predict", {"windows": x.tolist()})
    assert status == 200, body
    assert body["model"] == served_tag
    assert body["calibrated"] is False  # HAR_CALIBRATION=0 (CONTRACT_ENV): the raw path
    want = np.asarray(model(Preprocessor(card).scale(x), training=False))
    got = np.array([[p["probabilities"][c] for c in card.classes] for p in body["predictions"]])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [p["activity_id"] for p in body["predictions"]] == list(want.argmax(1))
    assert [p["activity"] for p in body["predictions"]] == [card.classes[i] for i in want.argmax(1)]


def test_predict_converts_declared_units(served, heldout_windows):
    x = heldout_windows["windows"][:4].astype(np.float64)
    _, canonical = post_json(f"{served.url}/predict", {"windows": x.tolist()})
    in_g = x.copy()
    in_g[..., :3] /= 9.80665
    in_g[..., 3:] = np.deg2rad(in_g[..., 3:])
    status, other = post_json(
        f"{served.url}/predict", {"windows": in_g.tolist(), "units": {"acc": "g", "gyro": "rad/s"}}
    )
    assert status == 200, other
    for a, b in zip(canonical["predictions"], other["predictions"], strict=True):
        assert a["activity"] == b["activity"]
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"windows": [[[1.0] * 6] * 3]}, "shape"),
        ({"windows": [[[1.0] * 5] * 200]}, "shape"),
        ({"windows": [[["x"] * 6] * 200]}, "windows"),
        ({"windows": [[[1.0] * 6] * 200], "units": {"acc": "furlong"}}, "furlong"),
        ({"nothing": 1}, "windows"),
    ],
)
def test_bad_predict_bodies_get_400_naming_the_problem(served, window, payload, names):
    status, body = post_json(f"{served.url}/predict", payload)
    assert status == 400, body
    assert names in json.dumps(body)
    assert post_json(f"{served.url}/predict", {"windows": [window]})[0] == 200  # still serving


def test_recording_csv_and_garmin_pair(served):
    status, body = upload(
        f"{served.url}/predict_recording",
        {"file": PRODUCTION / "session_canonical_100hz.csv"},
    )
    assert status == 200, body
    assert body["windows"] and body["segments"] and sum(body["summary"].values()) > 0
    status, body = upload(
        f"{served.url}/predict_recording",
        {
            "accelerometer": PRODUCTION / "session-accelerometer_data.csv",
            "gyroscope": PRODUCTION / "session-gyroscope_data.csv",
        },
    )
    assert status == 200, body
    assert body["windows"] and all(w["end"] > w["start"] >= 0 for w in body["windows"])
    status, body = upload(
        f"{served.url}/predict_recording",
        {
            "accelerometer": SHORT / "garmin-accelerometer_data.csv",
            "gyroscope": SHORT / "garmin-gyroscope_data.csv",
        },
    )
    assert status == 400 and "too short" in body["error"], body


def test_model_card_probes_and_metrics(served, served_tag):
    status, _, text = get(f"{served.url}/model")
    assert status == 200
    info = json.loads(text)
    assert info["tag"] == served_tag and info["card"]["window"] == 200
    # the bundled model's export passed its parity check: ONNX Runtime serves it, and the
    # model worker (asked from inside) never imported TensorFlow
    assert info["card"]["onnx"]["passed"] is True
    assert info["runtime"]["name"] == "onnx", info["runtime"]
    assert info["runtime"]["tensorflow_imported"] is False
    assert "parity" in info["runtime"]["reason"]
    for probe in ("/healthz", "/livez", "/readyz"):
        assert get(f"{served.url}{probe}")[0] == 200, probe
    status, ctype, text = get(f"{served.url}/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert "har_predictions_total" in text and "bentoml_service_request_total" in text


def test_drift_counts_served_windows_and_shadow_is_off(served, heldout_windows):
    x = heldout_windows["windows"][:24]
    assert post_json(f"{served.url}/predict", {"windows": x.tolist()})[0] == 200
    deadline = time.monotonic() + 90
    while True:
        drift = json.loads(get(f"{served.url}/monitoring/drift")[2])
        if drift["rows"] >= len(x):
            break
        assert time.monotonic() < deadline, drift
        time.sleep(1)
    assert drift["status"] in ("ok", "drift", "insufficient_data")
    assert {"acc_x_mean", "gyro_z_mean"} <= {f["name"] for f in drift["features"]}
    status, _, text = get(f"{served.url}/monitoring/shadow")
    assert status == 200 and json.loads(text)["status"] == "off"
