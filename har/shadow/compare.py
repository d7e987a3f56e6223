"""The served model vs the shadow model, window by window, over time.

:class:`ShadowStats` keeps, per ``BUCKET_S``-second bucket of the last
``RETENTION_S`` seconds, the matrix of (served class, shadow class) counts, both
models' summed confidence (largest softmax probability) and the windows dropped;
:meth:`ShadowStats.answer` sums the buckets of an interval into the
``GET /monitoring/shadow`` answer. Every window compared also moves the
``har_shadow_*`` Prometheus counters (:func:`shadow_metrics`), which BentoML's
``/metrics`` sums over API workers; the answer covers this worker only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

#: Seconds per bucket: interval bounds are rounded down to a multiple of this.
BUCKET_S = 10
#: Buckets older than this (seconds) are forgotten.
RETENTION_S = 24 * 3600
#: Why windows were not compared (the ``reason`` label of the dropped counter).
DROP_REASONS = ("queue_full", "timeout", "error", "closed")
STATUSES = ("ok", "off", "insufficient_data")


@dataclass
class _Bucket:
    matrix: np.ndarray  # (n_primary, n_shadow) int64 window counts
    conf_sum: np.ndarray = field(default_factory=lambda: np.zeros(2))  # primary, shadow
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ShadowMetrics:
    """The ``prometheus_client`` objects of the shadow comparison."""

    windows: Any
    agreements: Any
    dropped: Any
    disagreements: Any
    confidence: Any
    queued: Any


_lock = threading.Lock()
_metrics: ShadowMetrics | None = None


def shadow_metrics() -> ShadowMetrics:
    """The process's shadow metrics, created on first use (in a worker, after BentoML set
    up ``prometheus_client``'s multiprocess mode; see har/monitoring/metrics.py)."""
    global _metrics
    with _lock:
        if _metrics is None:
            from prometheus_client import Counter, Gauge, Histogram

            from har.monitoring.metrics import CONFIDENCE_BUCKETS

            _metrics = ShadowMetrics(
                windows=Counter("har_shadow_windows", "Windows scored by both models."),
                agreements=Counter(
                    "har_shadow_agreements", "Windows both models gave the same activity."
                ),
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
        return _metrics


def off_answer() -> dict[str, Any]:
    """``GET /monitoring/shadow`` when no shadow model is configured."""
    return {
        "status": "off",
        "model": None,
        "windows": 0,
        "agreement": None,
        "dropped": 0,
        "disagreement": {},
    }


class ShadowStats:
    """Agreement of the served (primary) model and the shadow, per time bucket.

    Thread-safe (the event loop records, an endpoint may answer from a thread).

    Args:
        primary_classes: the served model's classes (its softmax order).
        shadow_classes: the shadow's classes; windows agree when the class *names* match.
        model: the shadow's tag; ``primary_model``: the served model's tag.
        min_windows: fewer windows in an interval: ``insufficient_data``.
        metrics: Prometheus metrics to move (``None``: none).
        clock: seconds since the epoch (tests).
    """

    def __init__(
        self,
        primary_classes: Sequence[str],
        shadow_classes: Sequence[str],
        *,
        model: str,
        primary_model: str,
        min_windows: int = 100,
        metrics: ShadowMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.primary_classes = list(primary_classes)
        self.shadow_classes = list(shadow_classes)
        self.model = model
        self.primary_model = primary_model
        self.min_windows = min_windows
        self.metrics = metrics
        self.clock = clock
        self._same = np.array(
            [[p == s for s in self.shadow_classes] for p in self.primary_classes], bool
        )
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()
        self.started = clock()

    def _bucket(self, t: float) -> _Bucket:
        key = int(t // BUCKET_S)
        b = self._buckets.get(key)
        if b is None:
            shape = (len(self.primary_classes), len(self.shadow_classes))
            b = self._buckets[key] = _Bucket(np.zeros(shape, np.int64))
            oldest = key - RETENTION_S // BUCKET_S
            for k in [k for k in self._buckets if k < oldest]:
                del self._buckets[k]
        return b

    def record(self, primary_probs: np.ndarray, shadow_probs: np.ndarray) -> None:
        """Compare ``(N, n_primary)`` and ``(N, n_shadow)`` probabilities of the same windows."""
        p = np.asarray(primary_probs, np.float64)
        s = np.asarray(shadow_probs, np.float64)
        if p.shape[0] != s.shape[0] or s.ndim != 2 or s.shape[1] != len(self.shadow_classes):
            raise ValueError(f"shadow output {s.shape} does not match {p.shape[0]} windows")
        pi, si = p.argmax(axis=1), s.argmax(axis=1)
        pc, sc = p.max(axis=1), s.max(axis=1)
        counts = np.zeros((len(self.primary_classes), len(self.shadow_classes)), np.int64)
        np.add.at(counts, (pi, si), 1)
        with self._lock:
            b = self._bucket(self.clock())
            b.matrix += counts
            b.conf_sum += (pc.sum(), sc.sum())
        if self.metrics is not None:
            self._publish(counts, pc, sc)

    def _publish(self, counts: np.ndarray, pc: np.ndarray, sc: np.ndarray) -> None:
        m = self.metrics
        assert m is not None
        m.windows.inc(int(counts.sum()))
        m.agreements.inc(int(counts[self._same].sum()))
        for i, j in zip(*np.nonzero(counts * ~self._same), strict=True):
            m.disagreements.labels(self.primary_classes[i], self.shadow_classes[j]).inc(
                int(counts[i, j])
            )
        for label, values in (("primary", pc), ("shadow", sc)):
            h = m.confidence.labels(label)
            for v in values:
                h.observe(float(v))

    def record_dropped(self, n: int, reason: str) -> None:
        """``n`` windows the shadow did not score, and why (one of ``DROP_REASONS``)."""
        if n <= 0:
            return
        with self._lock:
            d = self._bucket(self.clock()).dropped
            d[reason] = d.get(reason, 0) + n
        if self.metrics is not None:
            self.metrics.dropped.labels(reason).inc(n)

    def answer(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        """The comparison over ``[since, until]`` (UTC; ``None``: service start / now).

        Returns ``{"status", "model", "primary_model", "interval", "windows", "agreement",
        "dropped", "dropped_by_reason", "disagreement": {primary: {shadow: count}},
        "confidence": {"primary", "shadow"}, "min_windows"}``; means are ``None``
        without windows.
        """
        lo = int(since.timestamp() // BUCKET_S) if since is not None else None
        hi = int(until.timestamp() // BUCKET_S) if until is not None else None
        matrix = np.zeros((len(self.primary_classes), len(self.shadow_classes)), np.int64)
        conf, dropped = np.zeros(2), dict.fromkeys(DROP_REASONS, 0)
        with self._lock:
            for k, b in self._buckets.items():
                if (lo is None or k >= lo) and (hi is None or k <= hi):
                    matrix += b.matrix
                    conf += b.conf_sum
                    for r, n in b.dropped.items():
                        dropped[r] = dropped.get(r, 0) + n
        n = int(matrix.sum())
        agree = int(matrix[self._same].sum())
        disagreement: dict[str, dict[str, int]] = {}
        for i, j in zip(*np.nonzero(matrix * ~self._same), strict=True):
            row = disagreement.setdefault(self.primary_classes[i], {})
            row[self.shadow_classes[j]] = int(matrix[i, j])
        answer: dict[str, Any] = {
            "status": "ok" if n >= self.min_windows else "insufficient_data",
            "model": self.model,
            "primary_model": self.primary_model,
            "interval": {
                "since": (since or datetime.fromtimestamp(self.started, UTC)).isoformat(),
                "until": (until or datetime.fromtimestamp(self.clock(), UTC)).isoformat(),
            },
            "windows": n,
            "agreement": agree / n if n else None,
            "dropped": sum(dropped.values()),
            "dropped_by_reason": dropped,
            "disagreement": disagreement,
            "confidence": {
                "primary": float(conf[0] / n) if n else None,
                "shadow": float(conf[1] / n) if n else None,
            },
            "min_windows": self.min_windows,
        }
        if n < self.min_windows:
            answer["reason"] = (
                f"{n} windows compared in the interval, fewer than HAR_SHADOW_MIN_WINDOWS="
                f"{self.min_windows}"
            )
        return answer
