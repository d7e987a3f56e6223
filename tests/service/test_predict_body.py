"""POST /predict in-process (BentoML's ASGI app, the real model as a local dependency):
the .npy body, the JSON body parsed outside pydantic, and the OpenAPI page that still
documents the JSON schema with its runnable example."""

from __future__ import annotations

import io

import numpy as np
import pytest

NPY = {"content-type": "application/x-npy"}


@pytest.fixture(scope="module")
def client(service_client):
    return service_client


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _probs(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    return np.array([list(p["probabilities"].values()) for p in preds])


def test_npy_body_answers_as_the_json_body(client, heldout_windows):
    x = heldout_windows["windows"][:8].astype(np.float32)
    as_json = _probs(client.post("/predict", json={"windows": x.tolist()}))
    as_npy = _probs(client.post("/predict", content=_npy(x), headers=NPY))
    np.testing.assert_allclose(as_npy, as_json, atol=1e-6)


def test_npy_body_units_come_from_the_query(client, heldout_windows):
    x = heldout_windows["windows"][:4].astype(np.float64)
    canonical = _probs(client.post("/predict", content=_npy(x), headers=NPY))
    other = x.copy()
    other[..., :3] /= 9.80665  # m/s² -> g
    other[..., 3:] *= np.pi / 180  # deg/s -> rad/s
    url = "/predict?acc_unit=g&gyro_unit=rad/s"
    converted = _probs(client.post(url, content=_npy(other), headers=NPY))
    np.testing.assert_allclose(converted, canonical, atol=1e-4)


@pytest.mark.parametrize(
    ("body", "url", "needle"),
    [
        (b"not an npy file", "/predict", "not a readable .npy"),
        (_npy(np.zeros((1, 199, 6), np.float32)), "/predict", "(1, 199, 6)"),
        (_npy(np.full((1, 200, 6), np.nan, np.float32)), "/predict", "NaN or infinity"),
        (_npy(np.zeros((300, 200, 6), np.float32)), "/predict", "too many windows"),
        (_npy(np.zeros((1, 200, 6), np.float32)), "/predict?acc_unit=furlong", "units"),
    ],
)
def test_npy_body_mistakes_are_400(client, body, url, needle):
    r = client.post(url, content=body, headers=NPY)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_openapi_keeps_the_json_schema_and_example(client):
    spec = client.get("/docs.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    windows = schema["properties"]["windows"]
    assert windows["type"] == "array"
    example = windows["examples"][0]
    assert np.asarray(example).shape == (1, 200, 6)
    assert "windows" in schema["required"]
    assert "units" in schema["properties"]


def test_no_tracing_middleware_unless_asked(client, heldout_windows):
    # HAR_TRACING is off in the tests: BentoML's OpenTelemetry middleware, whose span id
    # is the X-BentoML-Request-ID header, is not in the request path
    r = client.post("/predict", json={"windows": heldout_windows["windows"][:1].tolist()})
    assert r.status_code == 200
    assert "x-bentoml-request-id" not in r.headers
