"""Locust load test for the HAR service: HTTP and gRPC users.

Run it headless against a running `make serve` (what `make loadtest` does):

    .venv/bin/locust -f load_tests/locustfile.py --headless -u 64 -r 16 -t 60s \
        --host http://localhost:3000 --csv load_tests/reports/locust \
        --html load_tests/reports/locust.html --exit-code-on-error 1

or with Locust's web UI on http://localhost:8089:

    .venv/bin/locust -f load_tests/locustfile.py --host http://localhost:3000

Users:
    HttpUser  POST /predict with one window (mostly) and now and then a whole
              recording to POST /predict_recording.
    GrpcUser  har.v1.ActivityRecognition/Predict with one window (mostly) and now
              and then a StreamPredict stream of raw 100 Hz samples in 25-sample
              chunks, each call reported to Locust's statistics.
    HarV2User the Open Inference Protocol over HTTP, as tritonclient calls it: POST
              /v2/models/NAME/infer with one window as binary tensor data (mostly),
              now and then as JSON tensors, and the model's readiness.

Payloads are made once at start from the recordings in data/production/ (the
same preprocessing as the service), never generated per request.

Environment:
    HAR_GRPC_TARGET   gRPC address (default: the --host's name, port 50051)
    HAR_LOCUST_WAIT   "min,max" seconds between a user's calls (default 0.05,0.2)
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from urllib.parse import urlparse

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # grpcio must cooperate with Locust's gevent loop

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from locust import HttpUser, User, between, events, task  # noqa: E402

from har.domain.card import ModelCard  # noqa: E402
from har.domain.preprocessing import Preprocessor  # noqa: E402
from har.domain.recordings import read_csv_recording  # noqa: E402
from har.v1 import har_pb2, har_pb2_grpc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

PROD = ROOT / "data" / "production"
RECORDING = PROD / "session_canonical_100hz.csv"
CARD = ROOT / "models" / "pretrained" / "card.json"
_lo, _hi = (float(x) for x in os.environ.get("HAR_LOCUST_WAIT", "0.05,0.2").split(","))


class Payloads:
    """Request bodies built once from data/production/ (canonical units)."""

    def __init__(self) -> None:
        card = ModelCard.from_file(CARD)
        rec = read_csv_recording(RECORDING)
        windows = Preprocessor(card).windows(rec.time, rec.values).values
        self.json_windows = [
            json.dumps({"windows": [w.round(4).tolist()]}).encode() for w in windows
        ]
        self.v2_binary = [v2_binary_body(w) for w in windows]
        self.v2_json = [
            json.dumps({"inputs": [v2_tensor(w, data=w.round(4).ravel().tolist())]}).encode()
            for w in windows
        ]
        self.grpc_windows = [
            har_pb2.PredictRequest(windows=[har_pb2.Window(values=w.ravel())]) for w in windows
        ]
        # 60 s of the recording for /predict_recording (a realistic upload, not the whole file)
        lines = RECORDING.read_bytes().splitlines(keepends=True)
        self.recording_csv = b"".join(lines[: 1 + 100 * 60])
        # 20 s of raw samples for a stream, in 25-sample chunks (a watch's burst size)
        n = 100 * 20
        t, v = rec.time[:n], rec.values[:n].astype(np.float32)
        self.stream_chunks = [
            har_pb2.SensorChunk(timestamps=t[i : i + 25], values=v[i : i + 25].ravel())
            for i in range(0, n, 25)
        ]


def v2_tensor(window: np.ndarray, **extra) -> dict:
    """The V2 input tensor ``windows`` of one window (``extra``: its data or parameters)."""
    return {"name": "windows", "datatype": "FP32", "shape": [1, *window.shape], **extra}


def v2_binary_body(window: np.ndarray) -> tuple[bytes, str]:
    """A V2 infer body with the binary tensor data extension (as ``tritonclient`` sends it)
    and its ``Inference-Header-Content-Length``."""
    raw = window.astype("<f4").tobytes()
    head = json.dumps(
        {
            "inputs": [v2_tensor(window, parameters={"binary_data_size": len(raw)})],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return head + raw, str(len(head))


PAYLOADS: Payloads | None = None


@events.init.add_listener
def _build_payloads(environment, **_kwargs) -> None:
    global PAYLOADS
    PAYLOADS = Payloads()


class HarHttpUser(HttpUser):
    """A client of the HTTP API."""

    wait_time = between(_lo, _hi)

    def on_start(self) -> None:
        self.cycle = itertools.cycle(PAYLOADS.json_windows)

    @task(30)
    def predict(self) -> None:
        with self.client.post(
            "/predict",
            data=next(self.cycle),
            headers={"content-type": "application/json"},
            catch_response=True,
        ) as r:
            if r.status_code != 200 or len(r.json().get("predictions", [])) != 1:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")

    @task(1)
    def predict_recording(self) -> None:
        files = {"file": ("session.csv", PAYLOADS.recording_csv, "text/csv")}
        with self.client.post("/predict_recording", files=files, catch_response=True) as r:
            if r.status_code != 200 or not r.json().get("segments"):
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")


class GrpcUser(User):
    """A client of the gRPC API, each call reported to Locust's statistics."""

    wait_time = between(_lo, _hi)

    def on_start(self) -> None:
        target = os.environ.get("HAR_GRPC_TARGET")
        if not target:
            host = urlparse(self.host or "http://localhost:3000").hostname or "localhost"
            target = f"{host}:50051"
        self.channel = grpc.insecure_channel(target)
        self.stub = har_pb2_grpc.ActivityRecognitionStub(self.channel)
        self.cycle = itertools.cycle(PAYLOADS.grpc_windows)

    def on_stop(self) -> None:
        self.channel.close()

    def _report(self, name: str, start: float, length: int, exc: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length,
            exception=exc,
            context={},
        )

    @task(30)
    def predict(self) -> None:
        start, exc, length = time.perf_counter(), None, 0
        try:
            reply = self.stub.Predict(next(self.cycle), timeout=30)
            length = reply.ByteSize()
            if len(reply.predictions) != 1:
                raise RuntimeError(f"expected 1 prediction, got {len(reply.predictions)}")
        except (grpc.RpcError, RuntimeError) as e:
            exc = e
        self._report("Predict", start, length, exc)

    @task(1)
    def stream_predict(self) -> None:
        start, exc, n = time.perf_counter(), None, 0
        try:
            for _ in self.stub.StreamPredict(iter(PAYLOADS.stream_chunks), timeout=60):
                n += 1
            if n == 0:
                raise RuntimeError("the stream produced no window")
        except (grpc.RpcError, RuntimeError) as e:
            exc = e
        self._report("StreamPredict", start, n, exc)


class HarV2User(HttpUser):
    """A client of the Open Inference Protocol (KServe V2) REST API."""

    wait_time = between(_lo, _hi)

    def on_start(self) -> None:
        with self.client.get("/model", name="/model (V2 user start)", catch_response=True) as r:
            self.model = r.json()["tag"].split(":", 1)[0] if r.status_code == 200 else ""
        self.infer = f"/v2/models/{self.model}/infer"
        self.binary = itertools.cycle(PAYLOADS.v2_binary)
        self.json = itertools.cycle(PAYLOADS.v2_json)

    @task(30)
    def infer_binary(self) -> None:
        body, head_len = next(self.binary)
        headers = {
            "content-type": "application/octet-stream",
            "Inference-Header-Content-Length": head_len,
        }
        with self.client.post(
            self.infer, data=body, headers=headers, name="/v2 infer (binary)", catch_response=True
        ) as r:
            n = int(r.headers.get("inference-header-content-length", 0))
            # two outputs as binary: 7 float32 probabilities, then one int64 class id
            if r.status_code != 200 or len(r.content) - n != 7 * 4 + 8:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")

    @task(3)
    def infer_json(self) -> None:
        with self.client.post(
            self.infer,
            data=next(self.json),
            headers={"content-type": "application/json"},
            name="/v2 infer (JSON)",
            catch_response=True,
        ) as r:
            if r.status_code != 200 or len(r.json().get("outputs", [])) != 2:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")

    @task(1)
    def ready(self) -> None:
        with self.client.get(
            f"/v2/models/{self.model}/ready", name="/v2 model ready", catch_response=True
        ) as r:
            if r.status_code != 200 or r.json().get("ready") is not True:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")
