"""Every Prometheus object of the service, served on BentoML's own ``/metrics``.

One module, one family per part of the service, each created once per process on first
use (:func:`_once`):

- monitoring (:func:`get_metrics`, :class:`HarMetrics`): ``har_predictions``, confidence,
  profiles and the ``har_drift_*`` gauges (:mod:`har.monitoring.publish`);
- traffic (:func:`grpc_metrics`, :func:`model_call_metrics`): gRPC calls
  (``har.grpc.observability``) and calls of the model service (``har/serving/model_client.py``,
  the shadow);
- the sample kept for labelling (:func:`sample_metrics`, ``har.monitoring.samples``);
- the shadow comparison (:func:`shadow_metrics`, ``har.shadow``);
- the served model's identity (:func:`model_info_gauge`, ``har.lifecycle.served``).

BentoML 1.4 runs ``prometheus_client`` in multiprocess mode: it sets
``PROMETHEUS_MULTIPROC_DIR`` in the environment of every worker it starts and
its ``/metrics`` endpoint aggregates that folder (``MultiProcessCollector``).
(``bentoml.metrics`` is a deprecated alias of ``prometheus_client`` itself.)
``prometheus_client`` picks its value storage (memory or that folder) when it
is first imported, so this module imports it only inside the functions that create
the metrics, called in a worker — never at import time.

Gauges of monitoring use ``multiprocess_mode="mostrecent"``: every worker may compute drift
over all workers' profile files, and the gauges show the most recently
computed interval (a dead worker's last value stays, like the files it wrote).
``har_drift_computed_timestamp_seconds`` says how old that interval is and
``har_drift_window_seconds`` how long (see :mod:`har.monitoring.publish`). Gauges of
traffic (calls and streams open, callers, the shadow's queue) sum over live workers
(``livesum``).

Traffic: BentoML's ``/metrics`` counts HTTP requests only, and its ``adaptive_batch_size``
histogram reads 1 because the API worker's coalescer (har/serving/coalescing.py) already
merged the rows. These fill both gaps:

gRPC (``har.grpc.observability`` records them for every service on the server):
    ``har_grpc_server_started_total{grpc_service, grpc_method, grpc_type}``,
    ``har_grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}``,
    ``har_grpc_server_handling_seconds{grpc_service, grpc_method}`` (histogram),
    ``har_grpc_server_msg_received_total`` / ``_msg_sent_total{grpc_service, grpc_method}``
    (stream messages), ``har_grpc_server_open_streams{grpc_service, grpc_method}``.
    Label values are bounded: a method the server has no handler for is counted as
    ``grpc_service="unknown", grpc_method="unknown"``; status codes are the 17 of gRPC.

Model calls (``model``: ``served`` or ``shadow``):
    ``har_model_call_rows`` (histogram: windows per call of the model service),
    ``har_model_call_seconds`` (histogram: duration of one call, as the API worker sees it),
    ``har_model_call_wait_seconds`` (histogram: how long the oldest window of a call
    waited before the call went out: the coalescer's hold to fill a batch, or the shadow
    queue), ``har_model_calls_in_flight`` (gauge: calls open),
    ``har_model_callers`` (gauge: requests waiting for the served model, i.e. the
    concurrency at the model; the batches-not-filling alert reads it).
    The shadow's queue depth is ``har_shadow_queue_windows``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

#: Upper bounds of the confidence histogram's buckets (max softmax probability).
CONFIDENCE_BUCKETS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

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


class _Family:
    """A group of metric objects (``prometheus_client`` Counter/Histogram/Gauge)."""

    def all(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class HarMetrics(_Family):
    """Monitoring's metric objects."""

    predictions: Any
    confidence: Any
    rows_profiled: Any
    rows_dropped: Any
    profile_files: Any
    drift_score: Any
    drift_recent_score: Any
    drift_threshold: Any
    drift_features_drifted: Any
    drift_status: Any
    drift_rows: Any
    drift_confidence_mean: Any
    drift_uncertain_share: Any
    drift_flip_rate: Any
    drift_window: Any
    drift_computed: Any


@dataclass(frozen=True)
class GrpcMetrics(_Family):
    """The gRPC server's metric objects."""

    started: Any
    handled: Any
    handling: Any
    received: Any
    sent: Any
    open_streams: Any


@dataclass(frozen=True)
class ModelCallMetrics(_Family):
    """The model calls' metric objects (label ``model``)."""

    rows: Any
    seconds: Any
    wait: Any
    in_flight: Any
    callers: Any


@dataclass(frozen=True)
class SampleMetrics(_Family):
    """The sample kept for labelling: windows kept (by reason) and deleted."""

    kept: Any
    dropped: Any


@dataclass(frozen=True)
class ShadowMetrics(_Family):
    """The shadow comparison's metric objects."""

    windows: Any
    agreements: Any
    dropped: Any
    disagreements: Any
    confidence: Any
    queued: Any


F = TypeVar("F", bound=_Family)
_lock = threading.Lock()
_created: dict[str, Any] = {}


def _once(name: str, create: Callable[[], F]) -> F:
    """The process's family ``name``, created by ``create`` on first use (in a worker, after
    BentoML set up multiprocess mode): a metric name registered twice would raise."""
    with _lock:
        if name not in _created:
            _created[name] = create()
        family: F = _created[name]
        return family


def get_metrics() -> HarMetrics:
    """Monitoring's metrics (``har.monitoring.Monitor``, the writer, the drift publisher)."""
    return _once("monitoring", _monitoring)


def _monitoring() -> HarMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        return Gauge(name, doc, labels, multiprocess_mode="mostrecent")

    return HarMetrics(
        predictions=Counter(
            "har_predictions", "Windows predicted, by predicted activity.", ["activity"]
        ),
        confidence=Histogram(
            "har_prediction_confidence",
            "Confidence (largest softmax probability) of profiled windows.",
            buckets=CONFIDENCE_BUCKETS,
        ),
        rows_profiled=Counter(
            "har_profile_rows", "Windows logged into whylogs profiles (one row per window)."
        ),
        rows_dropped=Counter(
            "har_profile_rows_dropped",
            "Windows not profiled because the monitoring queue was full or closed.",
        ),
        profile_files=Counter("har_profile_files", "Profile files written."),
        drift_score=gauge(
            "har_drift_score",
            "Hellinger distance of a feature between reference and the last computed interval "
            "(NaN when not computable).",
            ("feature",),
        ),
        drift_recent_score=gauge(
            "har_drift_recent_score",
            "Hellinger distance of a feature over the last profile interval of every worker "
            "within the last computed interval (NaN when not computed: too few rows, or the "
            "same profiles as the whole interval).",
            ("feature",),
        ),
        drift_threshold=gauge("har_drift_threshold", "Drift threshold of a feature.", ("feature",)),
        drift_features_drifted=gauge(
            "har_drift_features_drifted", "Features at or above their threshold, last interval."
        ),
        drift_status=gauge(
            "har_drift_status",
            "1 for the status of the last computed interval (ok, drift, insufficient_data).",
            ("status",),
        ),
        drift_rows=gauge("har_drift_rows", "Windows in the last computed drift interval."),
        drift_confidence_mean=gauge(
            "har_drift_confidence_mean", "Mean confidence in the last computed interval."
        ),
        drift_uncertain_share=gauge(
            "har_drift_uncertain_share",
            "Share of windows below HAR_UNCERTAIN_BELOW confidence, last computed interval.",
        ),
        drift_flip_rate=gauge(
            "har_drift_flip_rate",
            "Share of consecutive window pairs whose predicted activity differs, last interval.",
        ),
        drift_window=gauge(
            "har_drift_window_seconds",
            "Length of the last computed drift interval (HAR_DRIFT_WINDOW_S when the service "
            "computes it itself).",
        ),
        drift_computed=gauge(
            "har_drift_computed_timestamp_seconds",
            "Unix time when the last drift interval was computed.",
        ),
    )


def grpc_metrics() -> GrpcMetrics:
    """The gRPC server's metrics (``har.grpc.observability``)."""
    return _once("grpc", _grpc)


def _grpc() -> GrpcMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    call = ["grpc_service", "grpc_method"]
    return GrpcMetrics(
        started=Counter("har_grpc_server_started", "gRPC calls started.", [*call, "grpc_type"]),
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


def model_call_metrics() -> ModelCallMetrics:
    """The model calls' metrics (``har/serving/model_client.py``, the shadow's queue)."""
    return _once("model_calls", _model_calls)


def _model_calls() -> ModelCallMetrics:
    from prometheus_client import Gauge, Histogram

    return ModelCallMetrics(
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


def sample_metrics() -> SampleMetrics:
    """The sample's counters (``har.monitoring.samples``)."""
    return _once("samples", _samples)


def _samples() -> SampleMetrics:
    from prometheus_client import Counter

    return SampleMetrics(
        kept=Counter(
            "har_samples_kept",
            "Served windows kept for labelling (HAR_SAMPLE_DIR), by reason.",
            ["reason"],
        ),
        dropped=Counter(
            "har_samples_dropped",
            "Kept windows deleted to hold HAR_SAMPLE_MAX_MB (oldest first).",
        ),
    )


def shadow_metrics() -> ShadowMetrics:
    """The shadow comparison's metrics (``har.shadow``)."""
    return _once("shadow", _shadow)


def _shadow() -> ShadowMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return ShadowMetrics(
        windows=Counter("har_shadow_windows", "Windows scored by both models."),
        agreements=Counter("har_shadow_agreements", "Windows both models gave the same activity."),
        dropped=Counter(
            "har_shadow_windows_dropped",
            "Windows the shadow did not score (queue full, timeout, error, closed).",
            ["reason"],
        ),
        disagreements=Counter(
            "har_shadow_disagreements",
            "Windows whose served activity (primary) differs from the shadow's.",
            ["primary", "shadow"],
        ),
        confidence=Histogram(
            "har_shadow_confidence",
            "Confidence of each model on the windows both scored (model: primary, shadow).",
            ["model"],
            buckets=CONFIDENCE_BUCKETS,
        ),
        queued=Gauge(
            "har_shadow_queue_windows",
            "Windows waiting for the shadow model.",
            multiprocess_mode="livesum",
        ),
    )


def model_info_gauge() -> Any:
    """``har_model_info{name, version, alias, run_id}`` (value 1): the served model."""
    return _once("model_info", _model_info)


def _model_info() -> Any:
    from prometheus_client import Gauge

    return Gauge(
        "har_model_info",
        "The served model (value 1): registry name, version, alias and run id.",
        ["name", "version", "alias", "run_id"],
        multiprocess_mode="mostrecent",
    )
