"""Prometheus metrics of the traffic itself: gRPC calls and the calls to the model.

BentoML's ``/metrics`` counts HTTP requests only, and its ``adaptive_batch_size``
histogram reads 1 because the API worker's coalescer (har/serving/coalescing.py) already
merged the rows. These metrics fill both gaps, in the same ``prometheus_client``
multiprocess registry (created on first use in a worker, never at import: see
:mod:`har.monitoring.metrics`):

gRPC (``har.grpc.observability`` records them for every service on the server):
    ``har_grpc_server_started_total{grpc_service, grpc_method, grpc_type}``,
    ``har_grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}``,
    ``har_grpc_server_handling_seconds{grpc_service, grpc_method}`` (histogram),
    ``har_grpc_server_msg_received_total`` / ``_msg_sent_total{grpc_service, grpc_method}``
    (stream messages), ``har_grpc_server_open_streams{grpc_service, grpc_method}``.
    Label values are bounded: a method the server has no handler for is counted as
    ``grpc_service="unknown", grpc_method="unknown"``; status codes are the 17 of gRPC.

Model calls (``model``: ``served`` or ``shadow``; har/serving/model_client.py, har/shadow):
    ``har_model_call_rows`` (histogram: windows per call of the model service),
    ``har_model_call_seconds`` (histogram: duration of one call, as the API worker sees it),
    ``har_model_call_wait_seconds`` (histogram: how long the oldest window of a call
    waited before the call went out: the coalescer's hold to fill a batch, or the shadow
    queue), ``har_model_calls_in_flight`` (gauge: calls open),
    ``har_model_callers`` (gauge: requests waiting for the served model, i.e. the
    concurrency at the model; the batches-not-filling alert reads it).
    The shadow's queue depth is ``har_shadow_queue_windows`` (har/shadow/compare.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

#: Latency buckets (seconds) of gRPC calls and model calls: 1-10 ms resolved, up to 30 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: Windows per model call (powers of two up to the largest HAR_MAX_BATCH_SIZE).
ROWS_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
#: The label value of a method the gRPC server has no handler for.
UNKNOWN = "unknown"
#: The ``model`` label values.
SERVED, SHADOW = "served", "shadow"


@dataclass(frozen=True)
class GrpcMetrics:
    """The gRPC server's ``prometheus_client`` objects."""

    started: Any
    handled: Any
    handling: Any
    received: Any
    sent: Any
    open_streams: Any

    def all(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class ModelCallMetrics:
    """The model calls' ``prometheus_client`` objects (label ``model``)."""

    rows: Any
    seconds: Any
    wait: Any
    in_flight: Any
    callers: Any

    def all(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]


_lock = threading.Lock()
_grpc: GrpcMetrics | None = None
_model: ModelCallMetrics | None = None


def grpc_metrics() -> GrpcMetrics:
    """The process's gRPC metrics, created on first use (in a worker)."""
    global _grpc
    with _lock:
        if _grpc is None:
            from prometheus_client import Counter, Gauge, Histogram

            call = ["grpc_service", "grpc_method"]
            _grpc = GrpcMetrics(
                started=Counter(
                    "har_grpc_server_started", "gRPC calls started.", [*call, "grpc_type"]
                ),
                handled=Counter(
                    "har_grpc_server_handled",
                    "gRPC calls completed, by status code.",
                    [*call, "grpc_type", "grpc_code"],
                ),
                handling=Histogram(
                    "har_grpc_server_handling_seconds",
                    "Duration of gRPC calls (whole stream for streaming calls).",
                    call,
                    buckets=LATENCY_BUCKETS,
                ),
                received=Counter("har_grpc_server_msg_received", "Stream messages received.", call),
                sent=Counter("har_grpc_server_msg_sent", "Stream messages sent.", call),
                open_streams=Gauge(
                    "har_grpc_server_open_streams",
                    "Streaming gRPC calls open.",
                    call,
                    multiprocess_mode="livesum",
                ),
            )
        return _grpc


def model_call_metrics() -> ModelCallMetrics:
    """The process's model-call metrics, created on first use (in a worker)."""
    global _model
    with _lock:
        if _model is None:
            from prometheus_client import Gauge, Histogram

            _model = ModelCallMetrics(
                rows=Histogram(
                    "har_model_call_rows",
                    "Windows per call of the model service (the batch the API worker sent).",
                    ["model"],
                    buckets=ROWS_BUCKETS,
                ),
                seconds=Histogram(
                    "har_model_call_seconds",
                    "Duration of one call of the model service, seen from the API worker.",
                    ["model"],
                    buckets=LATENCY_BUCKETS,
                ),
                wait=Histogram(
                    "har_model_call_wait_seconds",
                    "Seconds the oldest window of a call waited before the call went out "
                    "(held to fill a batch, or queued for the shadow).",
                    ["model"],
                    buckets=LATENCY_BUCKETS,
                ),
                in_flight=Gauge(
                    "har_model_calls_in_flight",
                    "Calls of the model service open.",
                    ["model"],
                    multiprocess_mode="livesum",
                ),
                callers=Gauge(
                    "har_model_callers",
                    "Requests (HTTP or gRPC) waiting for the model's answer.",
                    ["model"],
                    multiprocess_mode="livesum",
                ),
            )
        return _model
