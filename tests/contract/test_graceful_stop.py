"""A graceful stop under load: every request accepted before SIGTERM is answered.

A container runtime or Kubernetes sends SIGTERM to the server's main process (the dev
target signals its whole process group) while clients still wait for answers. The
requests the server had already taken in must be answered in full (200 with their
predictions over HTTP, OK over gRPC), and the server must then exit 0 within a bound.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
import numpy as np

from har.v1 import har_pb2, har_pb2_grpc

#: Concurrent HTTP ``/predict`` requests and gRPC ``Predict`` calls in flight at SIGTERM.
HTTP_REQUESTS = 16
GRPC_CALLS = 4
#: Windows per request: enough work queued that the stop begins long before it is done.
WINDOWS_PER_REQUEST = 64
#: Seconds between the last request being sent and SIGTERM (the server accepts them).
SETTLE_S = 0.5
#: Longest a graceful stop may take (Kubernetes' default terminationGracePeriodSeconds: 30).
STOP_BOUND_S = 30.0


@dataclass
class Outcome:
    """One request's fate: HTTP status (or gRPC code name), predictions, error text."""

    status: int | str | None = None
    predictions: int = 0
    error: str = ""
    done_at: float = 0.0  # time.monotonic() when the answer (or the failure) came
    sent: threading.Event = field(default_factory=threading.Event)


def _windows(window: list[list[float]], n: int) -> np.ndarray:
    """``n`` distinct windows around ``window`` (a little noise, so no two are equal)."""
    base = np.asarray(window, np.float64)
    noise = np.random.default_rng(7).normal(scale=0.05, size=(n, *base.shape))
    return base + noise


def _post_predict(url: str, body: bytes, out: Outcome) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        out.sent.set()  # the whole body is on its way (the server may still be reading it)
        resp = conn.getresponse()
        data = resp.read()
        out.status = resp.status
        if resp.status == 200:
            out.predictions = len(json.loads(data)["predictions"])
        else:
            out.error = f"{resp.getheader('Retry-After')=} {data[:300]!r}"
    except (OSError, http.client.HTTPException) as exc:
        out.status, out.error = "no answer", repr(exc)
    finally:
        out.done_at = time.monotonic()
        out.sent.set()
        conn.close()


def _grpc_predict(stub: har_pb2_grpc.ActivityRecognitionStub, req, out: Outcome) -> None:
    try:
        future = stub.Predict.future(req, timeout=120)
        out.sent.set()
        answer = future.result()
        out.status, out.predictions = "OK", len(answer.predictions)
    except grpc.RpcError as exc:
        out.status, out.error = exc.code().name, str(exc.details())
    finally:
        out.done_at = time.monotonic()
        out.sent.set()


def test_sigterm_answers_every_accepted_request_then_exits_0(start_target, window):
    x = _windows(window, WINDOWS_PER_REQUEST)
    body = json.dumps({"windows": x.round(5).tolist()}).encode()
    req = har_pb2.PredictRequest(
        windows=[har_pb2.Window(values=w.ravel().astype(np.float32)) for w in x]
    )
    with start_target({}) as t:
        # warm: one answer each way, so the stop does not meet a first-call compile
        probe = Outcome()
        _post_predict(t.url, body, probe)
        assert probe.status == 200, probe.error
        http_out = [Outcome() for _ in range(HTTP_REQUESTS)]
        grpc_out = [Outcome() for _ in range(GRPC_CALLS)]
        with (
            grpc.insecure_channel(t.grpc_target) as channel,
            ThreadPoolExecutor(HTTP_REQUESTS + GRPC_CALLS) as pool,
        ):
            stub = har_pb2_grpc.ActivityRecognitionStub(channel)
            warm = Outcome()
            _grpc_predict(stub, req, warm)
            assert warm.status == "OK", warm.error
            jobs = [pool.submit(_grpc_predict, stub, req, o) for o in grpc_out]
            jobs += [pool.submit(_post_predict, t.url, body, o) for o in http_out]
            for o in http_out + grpc_out:
                assert o.sent.wait(60), "a request could not be sent"
            time.sleep(SETTLE_S)
            unanswered = sum(o.status is None for o in http_out + grpc_out)
            started = time.monotonic()
            code = t.stop(60)
            stop_s = time.monotonic() - started
            for job in jobs:
                job.result(timeout=60)
        log = t.log_tail(40)

    last = max(o.done_at for o in http_out + grpc_out) - started
    print(
        f"target {t.kind}: {unanswered} of {HTTP_REQUESTS + GRPC_CALLS} requests in flight "
        f"at SIGTERM, the last answered {last:.1f} s after it; stopped in {stop_s:.1f} s "
        f"with exit code {code}"
    )
    # the load must still be in flight when the stop begins, or the test proves nothing
    assert unanswered >= (HTTP_REQUESTS + GRPC_CALLS) // 2, "raise WINDOWS_PER_REQUEST"
    failed_http = [(o.status, o.error) for o in http_out if o.status != 200]
    failed_grpc = [(o.status, o.error) for o in grpc_out if o.status != "OK"]
    assert (failed_http, failed_grpc) == ([], []), (
        f"{len(failed_http)} of {HTTP_REQUESTS} HTTP requests and {len(failed_grpc)} of "
        f"{GRPC_CALLS} gRPC calls failed:\n{failed_http[:3]}\n{failed_grpc[:3]}\n{log}"
    )
    assert all(o.predictions == WINDOWS_PER_REQUEST for o in http_out + grpc_out)
    assert code == 0, t.log_tail()
    assert stop_s < STOP_BOUND_S, f"the stop took {stop_s:.1f} s"
