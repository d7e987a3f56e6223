"""Prometheus publishing of a drift answer: the ``har_drift_*`` gauges.

The gauges describe one interval: the last ``HAR_DRIFT_WINDOW_S`` seconds when
the service refreshes them itself (``HAR_DRIFT_EVERY_S``), otherwise the
interval of the last ``GET /monitoring/drift`` call.
``har_drift_computed_timestamp_seconds`` says when it was computed and
``har_drift_window_seconds`` how long it was, so a stale value is visible as stale.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from har.monitoring.drift import STATUSES
from har.monitoring.metrics import HarMetrics


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def window_seconds(answer: Mapping[str, Any]) -> float:
    """Length in seconds of the answer's interval (NaN when a bound is missing)."""
    iv = answer["interval"]
    if not iv.get("since") or not iv.get("until"):
        return math.nan
    since, until = datetime.fromisoformat(iv["since"]), datetime.fromisoformat(iv["until"])
    return (until - since).total_seconds()


def publish_drift(metrics: HarMetrics, answer: Mapping[str, Any]) -> None:
    """Set every ``har_drift_*`` gauge from a :func:`har.monitoring.drift.summarise` answer."""
    m = metrics
    for f in answer["features"]:
        m.drift_score.labels(f["name"]).set(_nan(f["score"]))
        m.drift_recent_score.labels(f["name"]).set(_nan(f.get("recent_score")))
        m.drift_threshold.labels(f["name"]).set(f["threshold"])
    m.drift_features_drifted.set(sum(bool(f["drifted"]) for f in answer["features"]))
    for s in STATUSES:
        m.drift_status.labels(s).set(1.0 if answer["status"] == s else 0.0)
    m.drift_rows.set(answer["rows"])
    m.drift_confidence_mean.set(_nan(answer["confidence"]["mean"]))
    m.drift_uncertain_share.set(_nan(answer["confidence"]["uncertain_share"]))
    m.drift_flip_rate.set(_nan(answer["stability"]["flip_rate"]))
    m.drift_window.set(window_seconds(answer))
    m.drift_computed.set(time.time())
