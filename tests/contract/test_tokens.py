"""Bearer tokens on the target (``HAR_API_TOKENS``): HTTP 401 with ``WWW-Authenticate``, gRPC
UNAUTHENTICATED, probes and gRPC health open, a configured token accepted on both."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from har.v1 import har_pb2, har_pb2_grpc
from tests.contract.conftest import TOKENS


def _http(url, token=None, body=None):
    """(status, headers, JSON or text body) of a GET, or a POST of ``body`` as JSON."""
    headers = {"content-type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    is_json = hdrs.get("content-type", "").startswith("application/json")
    return status, hdrs, json.loads(raw) if is_json else raw.decode()


def test_http_needs_a_configured_token_except_probes(guarded, window):
    body = {"windows": [window]}
    status, headers, answer = _http(f"{guarded.url}/predict", body=body)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in answer["error"]
    status, headers, answer = _http(f"{guarded.url}/predict", token="not-a-token", body=body)
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]
    for path in ("/model", "/monitoring/drift", "/monitoring/shadow"):
        assert _http(f"{guarded.url}{path}")[0] == 401, path
    for token in TOKENS:
        status, _, answer = _http(f"{guarded.url}/predict", token=token, body=body)
        assert status == 200 and len(answer["predictions"]) == 1, answer
    assert _http(f"{guarded.url}/model", token=TOKENS[0])[0] == 200
    for open_path in ("/healthz", "/livez", "/readyz"):
        assert _http(f"{guarded.url}{open_path}")[0] == 200, open_path


def test_grpc_needs_a_configured_token_except_health(guarded):
    request = har_pb2.PredictRequest(windows=[har_pb2.Window(values=[0.0] * 1200)])
    with grpc.insecure_channel(guarded.grpc_target) as ch:
        stub = har_pb2_grpc.ActivityRecognitionStub(ch)
        for md in (None, (("authorization", "Bearer wrong"),)):
            for call in (
                lambda md: stub.Predict(request, metadata=md, timeout=30),
                lambda md: stub.GetModel(har_pb2.GetModelRequest(), metadata=md, timeout=10),
                lambda md: list(stub.StreamPredict(iter([]), metadata=md, timeout=10)),
            ):
                with pytest.raises(grpc.RpcError) as err:
                    call(md)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.Predict(request, metadata=(("authorization", f"Bearer {TOKENS[1]}"),))
        assert len(reply.predictions) == 1
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
