"""Smoke-test a running HAR service over both protocols (used by image-test.sh).

    python container/smoke.py --http http://127.0.0.1:3000 --grpc 127.0.0.1:50051

Checks, in order: HTTP ``POST /predict`` with the windows of ``--window`` (a JSON
file ``{"windows": [[200 x 6 numbers], ...]}``), the gRPC health service
(``grpc.health.v1``, overall status SERVING) and ``har.v1.ActivityRecognition/Predict``
with the same windows. Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from har.v1 import har_pb2, har_pb2_grpc

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WINDOW_FILE = PROJECT_ROOT / "data" / "production" / "window.json"


class SmokeError(Exception):
    """A check failed; the message says which and why."""


def load_windows(path: Path) -> list[list[list[float]]]:
    """Windows from ``path``: ``{"windows": [[[6 floats] x window] x N]}`` (m/s², deg/s)."""
    windows = json.loads(path.read_text())["windows"]
    if not windows or any(len(row) != 6 for w in windows for row in w):
        raise SmokeError(f"{path}: expected a non-empty list of window x 6 arrays")
    return windows


def check_prediction(where: str, activity: str, confidence: float) -> None:
    if not activity or not (0.0 <= confidence <= 1.0) or math.isnan(confidence):
        raise SmokeError(f"{where}: bad prediction activity={activity!r} confidence={confidence}")


def check_http(base_url: str, windows: list[Any], timeout_s: float) -> str:
    """POST /predict; returns the served model's tag."""
    body = json.dumps({"windows": windows}).encode()
    request = urllib.request.Request(
        f"{base_url}/predict",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        raise SmokeError(f"HTTP /predict: {exc.code} {exc.read()[:500]!r}") from exc
    predictions = answer.get("predictions", [])
    if len(predictions) != len(windows):
        raise SmokeError(
            f"HTTP /predict: {len(predictions)} predictions for {len(windows)} windows"
        )
    for p in predictions:
        check_prediction("HTTP /predict", p.get("activity", ""), float(p.get("confidence", -1)))
    print(f"HTTP  /predict: {predictions[0]['activity']} ({predictions[0]['confidence']:.3f})")
    return str(answer.get("model", ""))


def check_grpc_health(channel: grpc.Channel, deadline_s: float) -> None:
    """Polls grpc.health.v1 until SERVING: the gRPC server may start after /readyz."""
    stub = health_pb2_grpc.HealthStub(channel)
    end = time.monotonic() + deadline_s
    while True:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                print("gRPC health: SERVING")
                return
            problem = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.RpcError as exc:
            problem = f"{exc.code().name}: {exc.details()}"
        if time.monotonic() > end:
            raise SmokeError(f"gRPC health: not SERVING after {deadline_s:.0f} s ({problem})")
        time.sleep(1)


def check_grpc_predict(channel: grpc.Channel, windows: list[Any], timeout_s: float) -> None:
    stub = har_pb2_grpc.ActivityRecognitionStub(channel)
    request = har_pb2.PredictRequest(
        windows=[har_pb2.Window(values=[v for row in w for v in row]) for w in windows]
    )
    try:
        answer = stub.Predict(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise SmokeError(f"gRPC Predict: {exc.code().name}: {exc.details()}") from exc
    if len(answer.predictions) != len(windows):
        raise SmokeError(
            f"gRPC Predict: {len(answer.predictions)} predictions for {len(windows)} windows"
        )
    for p in answer.predictions:
        check_prediction("gRPC Predict", p.activity, p.confidence)
    first = answer.predictions[0]
    print(f"gRPC  Predict: {first.activity} ({first.confidence:.3f}), model {answer.model}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", default="http://127.0.0.1:3000", help="HTTP base URL")
    parser.add_argument("--grpc", default="127.0.0.1:50051", help="gRPC host:port")
    parser.add_argument("--window", type=Path, default=DEFAULT_WINDOW_FILE, help="JSON windows")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per check")
    args = parser.parse_args(argv)
    try:
        windows = load_windows(args.window)
        model = check_http(args.http.rstrip("/"), windows, args.timeout)
        print(f"HTTP  model: {model}")
        with grpc.insecure_channel(args.grpc) as channel:
            check_grpc_health(channel, args.timeout)
            check_grpc_predict(channel, windows, args.timeout)
    except (SmokeError, OSError, ValueError, KeyError) as exc:
        print(f"smoke test failed: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
