"""The V2 REST binding (har/http/v2.py) in-process: routes, the binary tensor data extension
both ways, and the bounds checked before anything is allocated."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from har.domain.errors import InputError, ModelUnavailableError
from har.http.v2 import V2Http, parse_infer_body
from tests.helpers.v2_model import v2_model, windows

URL = "/v2/models/t/infer"


def client_of(http: V2Http) -> TestClient:
    app = Starlette(routes=[Route("/v2{path:path}", http.handle, methods=["GET", "POST"])])
    return TestClient(app)


@pytest.fixture
def client() -> TestClient:
    return client_of(V2Http(v2_model()[0]))


def tensor(n: int, **extra) -> dict:
    return {"name": "windows", "datatype": "FP32", "shape": [n, 20, 6], **extra}


def binary_request(w: np.ndarray, request: dict | None = None) -> tuple[bytes, dict]:
    raw = w.astype("<f4").tobytes()
    head = json.dumps(
        request or {"inputs": [tensor(len(w), parameters={"binary_data_size": len(raw)})]}
    ).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def split_response(r) -> tuple[dict, bytes]:
    n = int(r.headers["inference-header-content-length"])
    return json.loads(r.content[:n]), r.content[n:]


def test_metadata_and_health_routes(client):
    assert client.get("/v2").json()["name"] == "har"
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/t").json()["inputs"][0]["shape"] == [-1, 20, 6]
    assert client.get("/v2/models/t/versions/v1").json()["name"] == "t"
    assert client.get("/v2/models/t/versions/v1/ready").json() == {"name": "t", "ready": True}
    for path, status in [
        ("/v2/models/x", 404),
        ("/v2/models/t/versions/v9/ready", 404),
        ("/v2/other", 404),
        ("/v2/models/t/infer", 405),
    ]:
        r = client.get(path)
        assert r.status_code == status and "error" in r.json(), path
    assert client.post("/v2/models/t", content=b"{}").status_code == 405


def test_not_ready_is_503():
    client = client_of(V2Http(v2_model(ready=False)[0]))
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/t/ready").json() == {"name": "t", "ready": False}


def test_json_tensors_in_and_out_equal_the_scorer():
    model, monitor = v2_model()
    client = client_of(V2Http(model))
    w = windows(2)
    want = asyncio.run(model.scorer.predict(w))
    r = client.post(URL, json={"id": "r1", "inputs": [tensor(2, data=w.ravel().tolist())]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    answer = r.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("t", "v1", "r1")
    probs, ids = answer["outputs"]
    assert probs["shape"] == [2, 3] and ids == {
        "name": "activity_id",
        "datatype": "INT64",
        "shape": [2],
        "data": want.class_ids.tolist(),
    }
    np.testing.assert_array_equal(np.float32(probs["data"]), want.probs.ravel())
    assert monitor.windows == 4


def test_binary_tensors_in_and_out():
    model, _ = v2_model()
    client = client_of(V2Http(model))
    w = windows(3)
    body, headers = binary_request(
        w,
        {
            "inputs": [tensor(3, parameters={"binary_data_size": w.nbytes})],
            "outputs": [
                {"name": "activity_id"},
                {"name": "probabilities", "parameters": {"binary_data": True}},
            ],
        },
    )
    r = client.post(URL, content=body, headers=headers)
    assert r.status_code == 200, r.text
    head, blob = split_response(r)
    ids, probs = head["outputs"]
    assert ids["name"] == "activity_id" and "data" in ids  # JSON: not asked as binary
    assert probs["parameters"] == {"binary_data_size": 3 * 3 * 4} and len(blob) == 36
    want = asyncio.run(model.scorer.predict(w))
    np.testing.assert_array_equal(np.frombuffer(blob, "<f4").reshape(3, 3), want.probs)
    # binary_data_output: every output as binary, in order
    body, headers = binary_request(
        w,
        {
            "inputs": [tensor(3, parameters={"binary_data_size": w.nbytes})],
            "parameters": {"binary_data_output": True},
        },
    )
    head, blob = split_response(client.post(URL, content=body, headers=headers))
    assert [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [36, 24]
    np.testing.assert_array_equal(np.frombuffer(blob[36:], "<i8"), want.class_ids)


@pytest.mark.parametrize(
    ("body", "headers", "words"),
    [
        (b"[1]", {}, "must be a JSON object"),
        (b"{", {}, "cannot be parsed"),
        (b"{}", {}, "needs 'inputs'"),
        (json.dumps({"inputs": [tensor(1)]}).encode(), {}, "neither 'data' nor"),
        (b"{}", {"Inference-Header-Content-Length": "x"}, "must be an integer"),
        (b"{}", {"Inference-Header-Content-Length": "3"}, "the body has 2 bytes"),
        (b"{}", {"Inference-Header-Content-Length": "-1"}, "is -1"),
        (
            json.dumps({"inputs": [tensor(1, parameters={"binary_data_size": 480})]}).encode()
            + b"\0" * 10,
            "auto",
            "declares binary_data_size 480; the body has 10 bytes",
        ),
        (
            json.dumps({"inputs": [tensor(1, parameters={"binary_data_size": 480})]}).encode(),
            {},
            "no Inference-Header-Content-Length header",
        ),
        (
            json.dumps({"inputs": [tensor(1, parameters={"binary_data_size": 4})]}).encode()
            + b"\0" * 480,
            "auto",
            "476 bytes after the declared binary data",
        ),
        (
            json.dumps({"inputs": [tensor(1, parameters={"binary_data_size": 4})]}).encode()
            + b"\0" * 4,
            "auto",
            "has 4 bytes of data; its shape [1, 20, 6] of FP32 needs 480",
        ),
        (
            json.dumps({"inputs": [tensor(1, data=[0.0] * 120)]}).encode() + b"\0" * 8,
            "auto",
            "no input declares 'binary_data_size'",
        ),
        (
            json.dumps(
                {"inputs": [tensor(1, data=[0.0] * 120)], "outputs": [{"name": 1}]}
            ).encode(),
            {},
            "needs a string 'name'",
        ),
        (
            json.dumps(
                {"inputs": [tensor(1, data=[0.0] * 120)], "parameters": {"binary_data_output": 1}}
            ).encode(),
            {},
            "'binary_data_output' must be true or false",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "windows", "datatype": "FP32", "shape": ["1"]}]}
            ).encode(),
            {},
            "list of integers",
        ),
    ],
)
def test_bad_bodies_are_400(client, body, headers, words):
    if headers == "auto":  # the JSON is everything up to the closing brace of the object
        headers = {"Inference-Header-Content-Length": str(body.index(b"}]}") + 3)}
    r = client.post(URL, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


def test_compressed_bodies_are_refused(client):
    r = client.post(URL, content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "Content-Encoding 'gzip'" in r.json()["error"]


def test_huge_declarations_allocate_nothing():
    """A shape of 10^12 windows and a binary size of 10^13 bytes: refused from the header."""
    model, _ = v2_model()
    head = json.dumps(
        {"inputs": [tensor(10**12, parameters={"binary_data_size": 10**13})]}
    ).encode()
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="too many windows"):
            parse_infer_body(model, head + b"\0" * 64, str(len(head)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_model_unavailable_is_503():
    model, _ = v2_model()

    async def unavailable(scaled):
        raise ModelUnavailableError("restarting")

    model.scorer.infer = unavailable
    r = client_of(V2Http(model)).post(URL, json={"inputs": [tensor(1, data=[0.0] * 120)]})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
