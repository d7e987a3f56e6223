"""Prometheus metrics of monitoring, served on BentoML's own ``/metrics``.

BentoML 1.4 runs ``prometheus_client`` in multiprocess mode: it sets
``PROMETHEUS_MULTIPROC_DIR`` in the environment of every worker it starts and
its ``/metrics`` endpoint aggregates that folder (``MultiProcessCollector``).
(``bentoml.metrics`` is a deprecated alias of ``prometheus_client`` itself.)
``prometheus_client`` picks its value storage (memory or that folder) when it
is first imported, so this module imports it only inside :func:`get_metrics`,
called when a :class:`~har.monitoring.Monitor` is created in a worker — never
at import time.

Gauges use ``multiprocess_mode="mostrecent"``: every worker may compute drift
over all workers' profile files, and the gauges show the most recently
computed interval (a dead worker's last value stays, like the files it wrote).
``har_drift_computed_timestamp_seconds`` says how old that interval is and
``har_drift_window_seconds`` how long (see :mod:`har.monitoring.publish`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

#: Upper bounds of the confidence histogram's buckets (max softmax probability).
CONFIDENCE_BUCKETS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class HarMetrics:
    """The metric objects (``prometheus_client`` Counter/Histogram/Gauge)."""

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

    def all(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]


_lock = threading.Lock()
_metrics: HarMetrics | None = None


def _create() -> HarMetrics:
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


def get_metrics() -> HarMetrics:
    """The process's metrics, created on first use (after BentoML set up multiprocess mode)."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _create()
        return _metrics


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every ``v`` in ``values``, one update per bucket.

    ``prometheus_client``'s ``observe`` walks the bucket bounds in Python and, in
    multiprocess mode, writes two memory-mapped values per observation; for the
    thousands of windows a monitoring drain holds, that is a loop of microseconds per
    window in the writer thread, which shares the API worker's GIL with its event loop.
    Here the values are counted per bucket with numpy (``v <= bound``, as ``observe``)
    and each bucket and the sum are increased once. A histogram without the internals
    this relies on (another ``prometheus_client``) is observed value by value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for x in v.tolist():
            histogram.observe(x)
        return
    # the first bound >= v (the last bound is +Inf); NaN sorts past it: observe puts a
    # NaN in no bucket but adds it to the sum, and so does this
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), v, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)[: len(bounds)]
    total.inc(float(v.sum()))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
