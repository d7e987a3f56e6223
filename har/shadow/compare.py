"""The served model vs the shadow model, window by window, over time.

:class:`ShadowStats` keeps, per ``BUCKET_S``-second bucket of the last
``RETENTION_S`` seconds, the matrix of (served class, shadow class) counts, both
models' summed confidence (largest softmax probability) and the windows dropped;
:meth:`ShadowStats.answer` sums the buckets of an interval into the
``GET /monitoring/shadow`` answer. Every window compared also moves the
``har_shadow_*`` Prometheus counters (``har.monitoring.metrics.shadow_metrics``), which BentoML's
``/metrics`` sums over API workers. With a :class:`~har.shadow.store.ShadowStore`, each
worker writes its buckets to a shared folder at most ``FLUSH_S`` after they change, and
the answer sums every worker's (this worker's from memory, the others' from their files).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from har.monitoring.metrics import ShadowMetrics
from har.shadow.store import BucketCounts, ShadowStore

log = logging.getLogger(__name__)

#: Seconds per bucket: interval bounds are rounded down to a multiple of this.
BUCKET_S = 10
#: Buckets older than this (seconds) are forgotten.
RETENTION_S = 24 * 3600
#: Why windows were not compared (the ``reason`` label of the dropped counter).
DROP_REASONS = ("queue_full", "timeout", "error", "closed")
STATUSES = ("ok", "off", "insufficient_data")
#: Seconds at most between a change of this worker's counts and its write to the store.
FLUSH_S = 1.0


@dataclass
class _Bucket:
    matrix: np.ndarray  # (n_primary, n_shadow) int64 window counts
    conf_sum: np.ndarray = field(default_factory=lambda: np.zeros(2))  # primary, shadow
    dropped: dict[str, int] = field(default_factory=dict)


def off_answer() -> dict[str, Any]:
    """``GET /monitoring/shadow`` when no shadow model is configured."""
    return {
        "status": "off",
        "model": None,
        "windows": 0,
        "agreement": None,
        "dropped": 0,
        "disagreement": {},
        "workers": 0,
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
        store: the folder shared with the other API workers (``None``: this worker's
            counts only, in memory).
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
        store: ShadowStore | None = None,
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
        self.store = store
        self._dirty: set[int] = set()  # bucket keys changed since the last write
        self._flush_scheduled = False
        self._store_lock = threading.Lock()

    def _bucket(self, key: int) -> _Bucket:
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
            key = int(self.clock() // BUCKET_S)
            b = self._bucket(key)
            b.matrix += counts
            b.conf_sum += (pc.sum(), sc.sum())
        self._changed(key)
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
            key = int(self.clock() // BUCKET_S)
            d = self._bucket(key).dropped
            d[reason] = d.get(reason, 0) + n
        self._changed(key)
        if self.metrics is not None:
            self.metrics.dropped.labels(reason).inc(n)

    def _changed(self, key: int) -> None:
        """Bucket ``key`` changed: write it to the store within ``FLUSH_S``."""
        if self.store is None:
            return
        with self._store_lock:
            self._dirty.add(key)
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a test): write now
            self.flush()
            return
        loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write the changed buckets' files to the store (no-op without one). Never raises:
        a full or read-only disk costs the other workers' view, not this worker."""
        if self.store is None:
            return
        with self._store_lock:
            dirty, self._dirty, self._flush_scheduled = self._dirty, set(), False
            if not dirty:
                return
            with self._lock:
                hours = {self.store.hour_of(k) for k in dirty}
                files = {
                    h: {
                        k: self._counts(b)
                        for k, b in self._buckets.items()
                        if self.store.hour_of(k) == h
                    }
                    for h in hours
                }
            for hour, buckets in files.items():
                if not buckets:
                    continue
                try:
                    self.store.write(hour, buckets)
                except OSError as exc:
                    log.warning("shadow counts: cannot write to %s (%s)", self.store.folder, exc)

    @staticmethod
    def _counts(b: _Bucket) -> BucketCounts:
        dropped = np.array([b.dropped.get(r, 0) for r in DROP_REASONS], np.int64)
        return BucketCounts(b.matrix.copy(), b.conf_sum.copy(), dropped)

    def answer(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        """The comparison over ``[since, until]`` (UTC; ``None``: this worker's start / now)
        of every API worker writing to the same store (this one's only without a store).

        Returns ``{"status", "model", "primary_model", "interval", "windows", "agreement",
        "dropped", "dropped_by_reason", "disagreement": {primary: {shadow: count}},
        "confidence": {"primary", "shadow"}, "min_windows", "workers"}``; means are
        ``None`` without windows; ``workers``: how many API workers' counts are summed.
        """
        started = datetime.fromtimestamp(self.started, UTC)
        lo = int((since or started).timestamp() // BUCKET_S)
        hi = int(until.timestamp() // BUCKET_S) if until is not None else None
        matrix = np.zeros((len(self.primary_classes), len(self.shadow_classes)), np.int64)
        conf, dropped = np.zeros(2), dict.fromkeys(DROP_REASONS, 0)
        workers: set[str] = set()
        own = self.store.writer if self.store is not None else ""
        with self._lock:
            for k, b in self._buckets.items():
                if k >= lo and (hi is None or k <= hi):
                    matrix += b.matrix
                    conf += b.conf_sum
                    for r, n in b.dropped.items():
                        dropped[r] = dropped.get(r, 0) + n
                    workers.add(own)
        if self.store is not None:
            for writer, c in self.store.read_others(lo, hi):
                if c.matrix.shape != matrix.shape:
                    continue  # cannot happen for one (served, shadow) pair; never a 500
                matrix += c.matrix
                conf += c.conf_sum
                for r, n in zip(DROP_REASONS, c.dropped, strict=True):
                    dropped[r] += int(n)
                workers.add(writer)
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
                "since": (since or started).isoformat(),
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
            "workers": len(workers),
        }
        if n < self.min_windows:
            answer["reason"] = (
                f"{n} windows compared in the interval, fewer than HAR_SHADOW_MIN_WINDOWS="
                f"{self.min_windows}"
            )
        return answer
