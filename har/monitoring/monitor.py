"""The monitor of one service worker: served windows → rows → whylogs profiles on disk → drift.

Request path (:meth:`Monitor.observe`): a shape check and an append of the
call's arrays (references, no copy) to an in-memory buffer bounded by
``HAR_PROFILE_QUEUE_SIZE`` windows: a few microseconds. It never computes
features, waits for whylogs or touches the disk; when the buffer is full the
windows are dropped and counted (``har_profile_rows_dropped_total``).

Writer thread: every ``flush_s`` seconds (or sooner when many windows wait) it
turns everything buffered into feature rows with one vectorised numpy pass
(flip values in arrival order), updates the Prometheus counters and logs the
rows into the current profile with one whylogs call. Batching is what makes
it cheap: ~10 µs per window for the features and ~5-15 µs per row for
whylogs, against ~50 µs and ~200 µs when done one request at a time. Every
``HAR_PROFILE_INTERVAL_S`` it writes the profile to ``HAR_PROFILE_DIR`` as a file
named after its UTC interval and writer (:mod:`har.monitoring.store`) and starts
a new one. :meth:`Monitor.close` writes whatever is left, so every observed row
ends up in exactly one file unless it was counted as dropped.

Drift (:meth:`Monitor.drift`) merges every worker's files of the interval with
this worker's rows not yet written, and compares them with the reference profile.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from har.card import CANONICAL_CHANNELS, ModelCard
from har.monitoring import profiles, store
from har.monitoring.drift import STATUSES, DriftConfig, summarise
from har.monitoring.features import (
    CONFIDENCE,
    PRED_CLASS,
    FlipTracker,
    feature_names,
    feature_rows,
    input_feature_names,
)
from har.monitoring.metrics import HarMetrics, get_metrics
from har.monitoring.profiles import ProfileView
from har.settings import Settings

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Monitor:
    """Profiles every served window and answers drift questions for one worker.

    Args:
        card: the served model's card (channels, classes).
        settings: ``profile_dir``, ``profile_interval_s``, ``profile_queue_size``,
            ``drift_threshold``, ``drift_min_rows``, ``uncertain_below``.
        reference_path: the model's reference profile (``None``: drift answers
            ``insufficient_data``).
        worker_id: distinguishes this worker's files from other workers' (the
            process id is always added).
        thresholds: per-feature drift thresholds overriding ``settings.drift_threshold``.
        flush_s: how often the writer logs buffered windows into the current profile
            (Prometheus counters lag by at most this; drift always drains first).
        batch_rows: buffered windows that wake the writer before ``flush_s``.
    """

    def __init__(
        self,
        card: ModelCard,
        settings: Settings,
        reference_path: Path | None,
        *,
        worker_id: str | None = None,
        thresholds: Mapping[str, float] | None = None,
        flush_s: float = 2.0,
        batch_rows: int = 2000,
    ) -> None:
        self.card = card
        self.settings = settings
        self.profile_dir = Path(settings.profile_dir)
        self.interval_s = float(settings.profile_interval_s)
        self.capacity = int(settings.profile_queue_size)
        self.config = DriftConfig.from_settings(settings, thresholds)
        self.reference_path = Path(reference_path) if reference_path is not None else None
        self.writer = store.writer_name(worker_id, os.getpid())
        self.flush_s = min(float(flush_s), self.interval_s)
        self.batch_rows = int(batch_rows)
        self.columns = feature_names(card.channels)
        self.features = input_feature_names(card.channels)
        self.started_at = _now()

        self._metrics: HarMetrics = get_metrics()
        self._pred_counters = [self._metrics.predictions.labels(c) for c in card.classes]
        self._flips = FlipTracker()

        # Buffer of (windows, probs, sequence key) per observed call, bounded by
        # ``capacity`` windows in total; only the writer thread turns them into rows.
        self._buf: deque[tuple[np.ndarray, np.ndarray, str | None]] = deque()
        self._buf_rows = 0
        self._buf_lock = threading.Lock()
        # Guards the current profile, its interval and file writes; taken before _buf_lock.
        self._profile_lock = threading.RLock()
        self._profile = profiles.RollingProfile(
            self.columns,
            metadata={
                "classes": _json_list(card.classes),
                "channels": _json_list(card.channels),
                "model": card.name,
                "writer": self.writer,
            },
        )
        self._interval_start = self.started_at
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._start_lock = threading.Lock()
        self._reference: ProfileView | None = None
        self._reference_loaded = False
        self._view_cache: OrderedDict[Path, ProfileView] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.rows_observed = 0
        self.rows_dropped = 0
        self.rows_written = 0
        self.files_written: list[Path] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the background writer thread (idempotent; no-op after :meth:`close`)."""
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            with self._profile_lock:
                self._interval_start = _now()
            self._thread = threading.Thread(
                target=self._run, name=f"har-monitor-{self.writer}", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)

    def close(self, timeout: float = 10.0) -> None:
        """Write every buffered row into a final profile file and stop the writer.

        Idempotent and safe from a shutdown hook: waits at most about ``timeout``
        seconds, never raises (failures are logged), and rows observed afterwards
        are counted as dropped.
        """
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            if self._profile_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    self._drain_locked()
                    self._roll_locked(_now())
                finally:
                    self._profile_lock.release()
            else:
                log.error("monitoring: could not write the final profile within %.1f s", timeout)
        except Exception:
            log.exception("monitoring: writing the final profile failed")
        atexit.unregister(self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- request path
    def observe(
        self, windows: np.ndarray, probs: np.ndarray, *, sequence_key: str | None = None
    ) -> None:
        """Record served windows and the model's output; never blocks on I/O.

        Args:
            windows: ``(N, window, 6)`` float32 in canonical units (m/s², deg/s),
                before the model's scaler.
            probs: ``(N, n_classes)`` softmax output for those windows.
            sequence_key: the windows are consecutive in time within this key (a
                recording or a stream). A stream's key may come back over many
                calls: the predicted class is compared across calls. ``None``:
                unrelated windows, no flip value.
        """
        w = np.asarray(windows)
        p = np.asarray(probs)
        if w.ndim != 3 or p.ndim != 2 or w.shape[0] != p.shape[0]:
            raise ValueError(
                f"observe needs windows (N, window, channels) and probs (N, n_classes), "
                f"got {w.shape} and {p.shape}"
            )
        n = int(w.shape[0])
        if n == 0:
            return
        with self._buf_lock:
            self.rows_observed += n
            accepted = not self._closed and self._buf_rows + n <= self.capacity
            if accepted:
                self._buf.append((w, p, sequence_key))
                self._buf_rows += n
                wake = self._buf_rows >= self.batch_rows
            else:
                self.rows_dropped += n
        if not accepted:
            self._metrics.rows_dropped.inc(n)
        elif wake:
            self._wake.set()

    # ----------------------------------------------------------------- writer side
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._profile_lock:
                due = self._interval_start.timestamp() + self.interval_s - time.time()
            self._wake.wait(max(0.0, min(self.flush_s, due)))
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self._profile_lock:
                    self._drain_locked()
                    if time.time() >= self._interval_start.timestamp() + self.interval_s:
                        self._roll_locked(_now())
            except Exception:
                # Monitoring must not take the service down; the error is logged
                # and the rows of a failed batch are counted as dropped.
                log.exception("monitoring: profiling a batch failed")
                self._stop.wait(self.flush_s)

    def _drain_locked(self) -> None:
        """Profile every buffered window into the current profile (caller holds ``_profile_lock``)."""
        with self._buf_lock:
            batches = list(self._buf)
            self._buf.clear()
            self._buf_rows = 0
        if not batches:
            return
        n = sum(b[0].shape[0] for b in batches)
        try:
            rows = self._rows(batches)
            self._profile.track(rows)
        except Exception:
            with self._buf_lock:
                self.rows_dropped += n
            self._metrics.rows_dropped.inc(n)
            raise
        self._metrics.rows_profiled.inc(n)
        pred = rows[:, self.columns.index(PRED_CLASS)].astype(np.int64)
        counts = np.bincount(pred, minlength=len(self._pred_counters))
        for k in np.flatnonzero(counts[: len(self._pred_counters)]):
            self._pred_counters[k].inc(int(counts[k]))
        hist = self._metrics.confidence
        for c in rows[:, self.columns.index(CONFIDENCE)].tolist():
            hist.observe(c)

    def _rows(self, batches: list[tuple[np.ndarray, np.ndarray, str | None]]) -> np.ndarray:
        """Feature rows of buffered calls, in order (flips compare within each sequence key)."""
        sizes = [w.shape[0] for w, _, _ in batches]
        flips = None
        if any(key is not None for _, _, key in batches):
            flips = np.full(sum(sizes), np.nan)
            start = 0
            for (_, p, key), n in zip(batches, sizes, strict=True):
                if key is not None:
                    flips[start : start + n] = self._flips.update(key, p.argmax(axis=1))
                start += n
        if len(batches) == 1:  # e.g. one recording: no copy
            windows, probs = batches[0][0], batches[0][1]
        else:
            windows = np.concatenate([w for w, _, _ in batches])
            probs = np.concatenate([p for _, p, _ in batches])
        return feature_rows(windows, probs, flips)

    def _roll_locked(self, end: datetime) -> Path | None:
        """Write the current profile as the file of ``[interval start, end]`` and start a new one."""
        path = None
        if self._profile.rows:
            path = store.profile_path(self.profile_dir, self._interval_start, end, self.writer)
            profiles.write_bytes(self._profile.to_bytes(), path)
            self.rows_written += self._profile.rows
            self.files_written.append(path)
            self._metrics.profile_files.inc()
            self._profile.reset()
        self._interval_start = end
        return path

    def flush(self) -> None:
        """Log buffered rows into the current profile now (tests, drift)."""
        with self._profile_lock:
            self._drain_locked()

    # ----------------------------------------------------------------------- drift
    def reference(self) -> ProfileView | None:
        """The reference profile (read once; ``None`` if there is none)."""
        if not self._reference_loaded:
            if self.reference_path is not None and self.reference_path.is_file():
                self._reference = read_reference_profile(self.reference_path)
            elif self.reference_path is not None:
                log.warning("monitoring: no reference profile at %s", self.reference_path)
            self._reference_loaded = True
        return self._reference

    def _read_cached(self, path: Path) -> ProfileView:
        # Files never change once written; keep the latest ones deserialised.
        with self._cache_lock:
            view = self._view_cache.pop(path, None)
        if view is None:
            view = profiles.read_view(path)
        with self._cache_lock:
            self._view_cache[path] = view
            while len(self._view_cache) > 64:
                self._view_cache.popitem(last=False)
        return view

    def production_profile(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> ProfileView:
        """Merged profile of every worker's files overlapping ``[since, until]`` plus this
        worker's rows not yet written (when its current interval overlaps)."""
        now = _now()
        with self._profile_lock:
            self._drain_locked()
            pending = None
            if self._profile.rows and (until is None or self._interval_start <= until):
                pending = self._profile.snapshot()
            files = store.list_profiles(self.profile_dir, since, until)
        views = [self._read_cached(f.path) for f in files]
        if pending is not None and (since is None or now >= since):
            views.append(pending)
        return profiles.merge_views(views)

    def drift(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """Drift, confidence and stability of the windows served in ``[since, until]``.

        Args:
            since: start (UTC; naive = UTC); default: when this monitor was created.
            until: end; default: now.

        Returns:
            The ``GET /monitoring/drift`` answer (see :func:`har.monitoring.drift.summarise`).
            Updates the ``har_drift_*`` gauges to describe this interval.
        """
        since = store.as_utc(since) or self.started_at
        until = store.as_utc(until) or _now()
        prod = self.production_profile(since, until)
        answer = summarise(
            self.reference(), prod, self.config, since=since, until=until, features=self.features
        )
        self._publish(answer)
        return answer

    def _publish(self, answer: Mapping[str, Any]) -> None:
        m = self._metrics
        for f in answer["features"]:
            m.drift_score.labels(f["name"]).set(_nan(f["score"]))
            m.drift_threshold.labels(f["name"]).set(f["threshold"])
        m.drift_features_drifted.set(sum(bool(f["drifted"]) for f in answer["features"]))
        for s in STATUSES:
            m.drift_status.labels(s).set(1.0 if answer["status"] == s else 0.0)
        m.drift_rows.set(answer["rows"])
        m.drift_confidence_mean.set(_nan(answer["confidence"]["mean"]))
        m.drift_uncertain_share.set(_nan(answer["confidence"]["uncertain_share"]))
        m.drift_flip_rate.set(_nan(answer["stability"]["flip_rate"]))
        m.drift_computed.set(time.time())


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _json_list(items: list[str]) -> str:
    return json.dumps(list(items))


def build_reference_profile(
    windows: np.ndarray,
    probs: np.ndarray,
    *,
    classes: list[str] | None = None,
    sequence_ids: np.ndarray | None = None,
) -> ProfileView:
    """The reference profile of training windows, comparable with production profiles.

    Args:
        windows: ``(N, window, 6)`` float32 training windows in canonical units
            (m/s², deg/s), before the scaler.
        probs: ``(N, n_classes)`` the model's softmax output for them.
        classes: class names (stored in the profile's metadata for reports).
        sequence_ids: ``(N,)`` recording of each window, windows of a recording
            consecutive in time: gives the reference flip rate. ``None``: no flips.
    """
    w, p = np.asarray(windows), np.asarray(probs)
    flips = None
    if sequence_ids is not None:
        seq = np.asarray(sequence_ids)
        pred = p.argmax(axis=1)
        flips = np.full(w.shape[0], np.nan)
        same = seq[1:] == seq[:-1]
        flips[1:][same] = (pred[1:] != pred[:-1])[same]
    meta = {"role": "reference", "channels": _json_list(list(CANONICAL_CHANNELS))}
    if classes is not None:
        meta["classes"] = _json_list(list(classes))
    return profiles.profile_rows(feature_names(), feature_rows(w, p, flips), meta)


def write_reference_profile(view: ProfileView, path: Path) -> None:
    """Write a reference profile (whylogs binary format, atomically)."""
    profiles.write_view(view, Path(path))


def read_reference_profile(path: Path) -> ProfileView:
    """Read a reference profile written by :func:`write_reference_profile`."""
    return profiles.read_view(Path(path))
