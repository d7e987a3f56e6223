"""The Open Inference Protocol (KServe V2) on the target, through the clients users install:
``tritonclient`` HTTP (binary and JSON tensors) and gRPC, KServe's ``InferenceRESTClient`` and
``InferenceGRPCClient`` (each run from ``.venv-clients``, ``tests/helpers/v2_clients.py``).

Checked for every client: live, ready, model ready; infer of 1 and 64 windows equal to
``POST /predict``'s probabilities and to the Keras model's; the ``acc_unit`` parameter;
wrong shape, datatype, input name, model (and version) answered with the protocol's error,
4xx or ``INVALID_ARGUMENT`` / ``NOT_FOUND``; tokens enforced on the guarded target. Plus the
metadata (tritonclient), reflection, and the REST body bounds with plain HTTP.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from har.domain.card import STANDARD_GRAVITY
from har.domain.preprocessing import Preprocessor
from tests.contract.conftest import TOKENS
from tests.helpers.v2_clients import CLIENTS, run_client


def _host(target) -> str:
    return target.url.split("://", 1)[1]


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, body, {"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def model_name(served_tag) -> str:
    return served_tag.split(":", 1)[0]


@pytest.fixture(scope="module")
def arrays(tmp_path_factory, heldout_windows, window) -> dict[str, Any]:
    """The windows the calls send, as ``.npy`` files (``paths``) and arrays."""
    d = tmp_path_factory.mktemp("v2-arrays")
    one = np.asarray([window], np.float32)
    in_g = one.copy()
    in_g[..., :3] /= STANDARD_GRAVITY
    data = {
        "one": one,
        "many": np.asarray(heldout_windows["windows"][:64], np.float32),
        "one_in_g": in_g,
        "short": np.zeros((1, 100, 6), np.float32),
    }
    paths = {}
    for key, arr in data.items():
        paths[key] = str(d / f"{key}.npy")
        np.save(paths[key], arr)
    return {"paths": paths, **data}


def _calls(client: str, name: str, version: str, paths: dict[str, str]) -> dict[str, dict]:
    """What each client is asked, by key."""
    infer = {"op": "infer", "model": name}
    calls: dict[str, dict] = {
        "live": {"op": "server_live"},
        "ready": {"op": "server_ready"},
        "model_ready": {"op": "model_ready", "model": name},
        "one": {**infer, "npy": paths["one"]},
        "many": {**infer, "npy": paths["many"]},
        "many_json": {
            **infer,
            "npy": paths["many"],
            "binary": False,
            "outputs": ["probabilities", "activity_id"],
            "binary_outputs": False,
        },
        "in_g": {**infer, "npy": paths["one_in_g"], "parameters": {"acc_unit": "g"}},
        "bad_shape": {**infer, "npy": paths["short"]},
        "bad_dtype": {**infer, "npy": paths["one"], "datatype": "FP64"},
        "bad_input": {**infer, "npy": paths["one"], "input": "x"},
        "bad_unit": {**infer, "npy": paths["one"], "parameters": {"acc_unit": "furlongs"}},
        "bad_model": {**infer, "model": "no-such-model", "npy": paths["one"]},
    }
    if client.startswith("triton"):  # kserve's clients have no metadata call or version path
        calls["server_metadata"] = {"op": "server_metadata"}
        calls["model_metadata"] = {"op": "model_metadata", "model": name}
        calls["versioned"] = {**infer, "version": version, "npy": paths["one"]}
        calls["bad_version"] = {**infer, "version": "no-such-version", "npy": paths["one"]}
        calls["bad_metadata"] = {"op": "model_metadata", "model": "no-such-model"}
    return calls


#: The clients with metadata and version calls.
TRITON = [c for c in CLIENTS if c.startswith("triton")]


@pytest.fixture(scope="module", params=CLIENTS)
def answers(request, served, served_tag, model_name, arrays) -> tuple[str, dict[str, dict]]:
    """One run of a client against ``served``: (client, answers by key)."""
    client = request.param
    version = served_tag.split(":", 1)[1]
    calls = _calls(client, model_name, version, arrays["paths"])
    got = run_client(client, _host(served), served.grpc_target, list(calls.values()))
    return client, dict(zip(calls, got, strict=True))


@pytest.fixture(scope="module")
def predicted(served, arrays) -> dict[str, np.ndarray]:
    """``POST /predict``'s probabilities (card class order) of the same windows."""
    out = {}
    for key in ("one", "many"):
        body = json.dumps({"windows": arrays[key].tolist()}).encode()
        status, answer = _post(f"{served.url}/predict", body)
        assert status == 200, answer
        out[key] = np.asarray([list(p["probabilities"].values()) for p in answer["predictions"]])
    return out


def _ok(answer: dict) -> Any:
    assert answer["ok"], answer
    return answer["value"]


def _output(answer: dict, name: str) -> np.ndarray:
    out = _ok(answer)["outputs"][name]
    return np.asarray(out["data"]).reshape(out["shape"])


def test_live_ready_and_model_ready(answers):
    _, a = answers
    assert _ok(a["live"]) is True
    assert _ok(a["ready"]) is True
    assert _ok(a["model_ready"]) is True


@pytest.mark.parametrize("answers", TRITON, indirect=True)  # kserve's have no such call
def test_metadata(answers, model_name, served_tag, reference):
    _, a = answers
    _, card = reference
    server = _ok(a["server_metadata"])
    assert server["name"] == "har" and "binary_tensor_data" in server["extensions"]
    meta = _ok(a["model_metadata"])
    assert meta["name"] == model_name and meta["versions"] == [served_tag.split(":", 1)[1]]
    tensors = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]}
    assert tensors == {"windows": ("FP32", [-1, card.window, 6])}
    tensors = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["outputs"]}
    assert tensors == {
        "probabilities": ("FP32", [-1, len(card.classes)]),
        "activity_id": ("INT64", [-1]),
    }


@pytest.mark.parametrize(
    ("key", "windows"), [("one", "one"), ("many", "many"), ("many_json", "many")]
)
def test_infer_equals_predict_and_keras(answers, predicted, reference, arrays, key, windows):
    _, a = answers
    model, card = reference
    probs = _output(a[key], "probabilities")
    ids = _output(a[key], "activity_id")
    n = len(arrays[windows])
    assert probs.shape == (n, len(card.classes)) and ids.shape == (n,)
    assert _ok(a[key])["outputs"]["probabilities"]["datatype"] == "FP32"
    assert _ok(a[key])["outputs"]["activity_id"]["datatype"] == "INT64"
    # /predict rounds to 6 decimals; batches of other sizes differ in the last float32 bits
    np.testing.assert_allclose(probs, predicted[windows], atol=1e-5)
    want = np.asarray(model(Preprocessor(card).scale(arrays[windows]), training=False))
    np.testing.assert_allclose(probs, want, atol=1e-5)
    np.testing.assert_array_equal(ids, want.argmax(1))


def test_declared_units(answers):
    _, a = answers
    np.testing.assert_allclose(
        _output(a["in_g"], "probabilities"), _output(a["one"], "probabilities"), atol=1e-5
    )


@pytest.mark.parametrize("answers", TRITON, indirect=True)  # kserve's send no version
def test_versioned_infer(answers):
    _, a = answers
    np.testing.assert_array_equal(
        _output(a["versioned"], "probabilities"), _output(a["one"], "probabilities")
    )


ERRORS = [
    ("bad_shape", "invalid", "shape [N, 200, 6]"),
    ("bad_dtype", "invalid", "must be FP32"),
    ("bad_input", "invalid", "unknown input 'x'"),
    ("bad_unit", "invalid", "furlongs"),
    ("bad_model", "not_found", "unknown model 'no-such-model'"),
]
#: Errors only tritonclient can provoke (kserve's clients send no version, ask no metadata).
TRITON_ERRORS = [
    ("bad_version", "not_found", "unknown version 'no-such-version'"),
    ("bad_metadata", "not_found", "unknown model 'no-such-model'"),
]


@pytest.mark.parametrize(("key", "kind", "words"), ERRORS)
def test_errors(answers, key, kind, words):
    _check_error(answers, key, kind, words)


@pytest.mark.parametrize("answers", TRITON, indirect=True)
@pytest.mark.parametrize(("key", "kind", "words"), TRITON_ERRORS)
def test_errors_of_versions_and_metadata(answers, key, kind, words):
    _check_error(answers, key, kind, words)


def _check_error(answers: tuple[str, dict[str, dict]], key: str, kind: str, words: str) -> None:
    client, a = answers
    answer = a[key]
    assert not answer["ok"], answer
    grpc_client = client.endswith("grpc")
    want = {
        ("invalid", False): "400",
        ("invalid", True): "StatusCode.INVALID_ARGUMENT",
        ("not_found", False): "404",
        ("not_found", True): "StatusCode.NOT_FOUND",
    }[kind, grpc_client]
    assert answer["status"] == want, answer
    assert words in answer["message"]


@pytest.mark.parametrize("client", CLIENTS)
def test_tokens_enforced(guarded, model_name, arrays, client):
    calls = [{"op": "infer", "model": model_name, "npy": arrays["paths"]["one"]}]
    http, target = _host(guarded), guarded.grpc_target
    refused = run_client(client, http, target, calls)[0]
    assert not refused["ok"]
    assert refused["status"] in ("401", "StatusCode.UNAUTHENTICATED"), refused
    wrong = run_client(client, http, target, calls, token="not-a-token")[0]
    assert wrong["status"] == refused["status"], wrong
    accepted = run_client(client, http, target, calls, token=TOKENS[1])[0]
    assert _output(accepted, "probabilities").shape == (1, 7)


def test_reflection_lists_the_v2_service(served):
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in reply.list_services_response.service}
    assert {"inference.GRPCInferenceService", "har.v1.ActivityRecognition"} <= names


def test_rest_bounds(served, model_name):
    """Sizes a client declares are checked against the body before anything is allocated."""
    url = f"{served.url}/v2/models/{model_name}/infer"
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "windows",
                    "datatype": "FP32",
                    "shape": [1, 200, 6],
                    "parameters": {"binary_data_size": 4800},
                }
            ]
        }
    ).encode()
    cases = [
        # a binary size larger than what follows the JSON
        (
            head + b"\0" * 100,
            {"Inference-Header-Content-Length": str(len(head))},
            400,
            "declares binary_data_size 4800",
        ),
        # a JSON length larger than the body
        (head, {"Inference-Header-Content-Length": str(10**9)}, 400, "Inference-Header"),
        # a shape of 10^12 windows, with one number of data
        (
            b'{"inputs":[{"name":"windows","datatype":"FP32","shape":[1000000000000,200,6],'
            b'"data":[1]}]}',
            {},
            400,
            "too many windows",
        ),
    ]
    for body, headers, status, words in cases:
        got, answer = _post(url, body, headers)
        assert (got, words in answer["error"]) == (status, True), answer
    # more than HAR_MAX_REQUEST_BYTES (8 MiB in the suite) declared: refused before it is sent
    host, port = _host(served).rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.putrequest("POST", f"/v2/models/{model_name}/infer")
        conn.putheader("Content-Length", str(9 * 1024 * 1024))
        conn.putheader("Inference-Header-Content-Length", "0")
        conn.endheaders()
        reply = conn.getresponse()
        assert reply.status == 413 and "too large" in json.loads(reply.read())["error"]
    finally:
        conn.close()


def _profiled_rows(url: str) -> int:
    """Windows in the target's profiles so far (``GET /monitoring/drift``'s ``rows``; not
    ``/metrics``: the suite's targets share a BentoML home, and a target started later clears
    the Prometheus folder the earlier ones count in)."""
    with urllib.request.urlopen(f"{url}/monitoring/drift", timeout=120) as r:
        return int(json.loads(r.read())["rows"])


def test_v2_windows_are_profiled(served, model_name, arrays):
    """Monitoring sees the windows served through V2, as through /predict (the exact count per
    call: tests/unit/core/test_open_inference.py)."""
    before, stable = _profiled_rows(served.url), 0
    for _ in range(60):  # earlier tests' windows may still be on their way into the profiles
        time.sleep(1)
        now = _profiled_rows(served.url)
        stable = stable + 1 if now == before else 0
        before = now
        if stable == 2:
            break
    x = arrays["many"][:37]
    body = {
        "inputs": [
            {
                "name": "windows",
                "datatype": "FP32",
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
            }
        ]
    }
    status, answer = _post(f"{served.url}/v2/models/{model_name}/infer", json.dumps(body).encode())
    assert status == 200, answer
    deadline = time.monotonic() + 120
    while (after := _profiled_rows(served.url)) < before + len(x):
        assert time.monotonic() < deadline, (before, after)
        time.sleep(0.5)
