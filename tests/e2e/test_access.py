"""End-to-end: bearer tokens and TLS on a real `bentoml serve` (HTTP and gRPC).

Two servers, one per setting: tokens over plaintext (`/metrics` open), and tokens over
TLS on both ports with `HAR_METRICS_AUTH=1`. Certificates are made by the test.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request

import bentoml
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.servers import bentoml_serve
from tests.helpers.tls import make_pki

pytestmark = pytest.mark.e2e
TOKENS = ("e2e-token-a", "e2e-token-b")
FILE_TOKEN = "e2e-token-from-file"
WINDOW = {"windows": [[[0.0, 0.0, 9.81, 0.0, 0.0, 0.0]] * 200]}
SERVING = health_pb2.HealthCheckResponse.SERVING
BASE_ENV = {"HAR_API_TOKENS": ",".join(TOKENS), "HAR_XLA": "0", "HAR_MONITORING": "0"}


def _http(url, token=None, body=None, context=None):
    """(status, headers, JSON or text body) of a GET, or a POST of ``body`` as JSON."""
    headers = {"content-type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, headers)
    try:
        with urllib.request.urlopen(req, timeout=60, context=context) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    is_json = hdrs.get("content-type", "").startswith("application/json")
    return status, hdrs, json.loads(raw) if is_json else raw.decode()


def _md(token):
    return None if token is None else (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def plain(bundled_tag, tmp_path_factory):
    logs = tmp_path_factory.mktemp("access-plain")
    (logs / "tokens").write_text(f"# one per line\n{FILE_TOKEN}\n")
    env = {**BASE_ENV, "HAR_API_TOKENS_FILE": str(logs / "tokens"), "HAR_PROFILE_DIR": str(logs)}
    with bentoml_serve(env, log_dir=logs) as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("access-pki"))


@pytest.fixture(scope="module")
def tls(bundled_tag, tmp_path_factory, pki):
    logs = tmp_path_factory.mktemp("access-tls")
    env = {
        **BASE_ENV,
        "HAR_METRICS_AUTH": "1",
        "HAR_GRPC_TLS_CERT": str(pki.server_cert),
        "HAR_GRPC_TLS_KEY": str(pki.server_key),
        "HAR_PROFILE_DIR": str(logs),
    }
    args = ["--ssl-certfile", str(pki.server_cert), "--ssl-keyfile", str(pki.server_key)]
    context = ssl.create_default_context(cafile=pki.ca)
    with bentoml_serve(env, log_dir=logs, args=args, ssl_context=context) as server:
        server.context = context
        yield server


def test_http_needs_a_configured_token_except_probes_docs_and_metrics(plain):
    status, headers, body = _http(f"{plain.url}/predict", body=WINDOW)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["error"]
    status, headers, body = _http(f"{plain.url}/predict", token="e2e-token-c", body=WINDOW)
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]
    assert body == {"error": "invalid bearer token"}
    assert _http(f"{plain.url}/model")[0] == 401
    for token in (*TOKENS, FILE_TOKEN):
        status, _, body = _http(f"{plain.url}/predict", token=token, body=WINDOW)
        assert status == 200 and len(body["predictions"]) == 1, body
    assert _http(f"{plain.url}/model", token=FILE_TOKEN)[0] == 200
    with bentoml.SyncHTTPClient(plain.url, token=TOKENS[0]) as client:  # BentoML's own client
        assert len(client.predict(windows=WINDOW["windows"])["predictions"]) == 1
    for open_path in ("/healthz", "/livez", "/readyz", "/docs.json"):
        assert _http(f"{plain.url}{open_path}")[0] == 200, open_path
    status, _, text = _http(f"{plain.url}/metrics")
    assert status == 200 and 'http_response_code="401"' in text  # refusals are counted


def test_grpc_needs_a_configured_token_except_health(plain):
    request = har_pb2.PredictRequest(windows=[har_pb2.Window(values=[0.0] * 1200)])
    with grpc.insecure_channel(plain.grpc_target) as ch:
        stub = har_pb2_grpc.ActivityRecognitionStub(ch)
        for token in (None, "wrong"):
            for call in (
                lambda md: stub.Predict(request, metadata=md, timeout=30),
                lambda md: stub.GetModel(har_pb2.GetModelRequest(), metadata=md, timeout=10),
                lambda md: list(stub.StreamPredict(iter([]), metadata=md, timeout=10)),
            ):
                with pytest.raises(grpc.RpcError) as err:
                    call(_md(token))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.Predict(request, metadata=_md(TOKENS[1]), timeout=30)
        assert len(reply.predictions) == 1
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == SERVING


def test_https_with_the_test_ca_and_no_plaintext(tls):
    status, _, body = _http(f"{tls.url}/predict", token=TOKENS[0], body=WINDOW, context=tls.context)
    assert status == 200 and len(body["predictions"]) == 1
    assert _http(f"{tls.url}/predict", body=WINDOW, context=tls.context)[0] == 401
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _http(f"{tls.url}/readyz", context=ssl.create_default_context())  # system CAs only
    with pytest.raises((OSError, http.client.HTTPException)):  # plaintext to the TLS port
        _http(f"http://127.0.0.1:{tls.http_port}/readyz")
    # HAR_METRICS_AUTH=1: /metrics needs a token too; the probes stay open
    assert _http(f"{tls.url}/metrics", context=tls.context)[0] == 401
    assert _http(f"{tls.url}/metrics", token=TOKENS[0], context=tls.context)[0] == 200
    assert _http(f"{tls.url}/readyz", context=tls.context)[0] == 200


def test_grpc_over_tls_with_the_test_ca_and_no_plaintext(tls, pki):
    creds = grpc.ssl_channel_credentials(pki.ca.read_bytes())
    with grpc.secure_channel(tls.grpc_target, creds) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == SERVING
        stub = har_pb2_grpc.ActivityRecognitionStub(ch)
        info = stub.GetModel(har_pb2.GetModelRequest(), metadata=_md(TOKENS[0]), timeout=10)
        assert info.window == 200
        with pytest.raises(grpc.RpcError) as err:
            stub.GetModel(har_pb2.GetModelRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with grpc.insecure_channel(tls.grpc_target) as ch, pytest.raises(grpc.RpcError) as err:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
