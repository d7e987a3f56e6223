"""The profile writer of one service worker: served windows → feature rows → profiles on disk.

Request path (:meth:`ProfileWriter.observe`): a shape check and an append of the
call's arrays (references, no copy) to an in-memory buffer bounded by
``HAR_PROFILE_QUEUE_SIZE`` windows: a few microseconds. It never computes
features, waits for whylogs or touches the disk; when the buffer is full the
windows are dropped and counted (``har_profile_rows_dropped_total``).

Writer thread: every ``drain_s`` seconds (or sooner when many windows wait) it
turns everything buffered into feature rows with one vectorised numpy pass
(flip values in arrival order), updates the Prometheus counters and logs the
rows into the current profile with one whylogs call. Batching is what makes
it cheap: ~10 µs per window for the features and ~5-15 µs per row for
whylogs, against ~50 µs and ~200 µs when done one request at a time.

On disk (:mod:`har.monitoring.store`): every ``HAR_PROFILE_FLUSH_S`` the open
interval's profile overwrites the worker's one partial file (a hard kill loses
at most that many seconds of rows, plus ``drain_s`` when it is longer); every
``HAR_PROFILE_INTERVAL_S`` the profile is written as the final file of its UTC
interval, the partial removed and a new profile started. :meth:`ProfileWriter.close`
writes whatever is left, so every observed row ends up in exactly one file
unless it was counted as dropped.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.card import ModelCard
from har.monitoring import profiles, store
from har.monitoring.features import CONFIDENCE, PRED_CLASS, FlipTracker, feature_rows
from har.monitoring.metrics import HarMetrics
from har.monitoring.profiles import ProfileView
from har.monitoring.store import ProfileFile
from har.settings import Settings

log = logging.getLogger(__name__)

#: One observed call: windows, probabilities, sequence key.
Batch = tuple[np.ndarray, np.ndarray, str | None]


def now_utc() -> datetime:
    return datetime.now(UTC)


class ProfileWriter:
    """Queues served windows and writes them as profiles (see the module docstring).

    Args:
        card: the served model's card (channels, classes).
        settings: ``profile_dir``, ``profile_interval_s``, ``profile_flush_s``,
            ``profile_queue_size``.
        columns: feature-row columns (:func:`har.monitoring.features.feature_names`).
        metrics: the process's Prometheus metrics.
        worker_id: distinguishes this worker's files (the process id is always added).
        drain_s: how often buffered windows are logged into the current profile.
        batch_rows: buffered windows that wake the writer before ``drain_s``.
    """

    def __init__(
        self,
        card: ModelCard,
        settings: Settings,
        columns: list[str],
        metrics: HarMetrics,
        *,
        worker_id: str | None = None,
        drain_s: float = 2.0,
        batch_rows: int = 2000,
    ) -> None:
        self.profile_dir = Path(settings.profile_dir)
        self.interval_s = float(settings.profile_interval_s)
        self.persist_s = float(settings.profile_flush_s)
        self.capacity = int(settings.profile_queue_size)
        self.name = store.writer_name(worker_id, os.getpid())
        periods = [float(drain_s), self.interval_s] + ([self.persist_s] if self.persist_s else [])
        self.drain_s = min(periods)
        self.batch_rows = int(batch_rows)
        self.columns = columns
        self._pred_col, self._conf_col = columns.index(PRED_CLASS), columns.index(CONFIDENCE)
        self._metrics = metrics
        self._pred_counters = [metrics.predictions.labels(c) for c in card.classes]
        self._flips = FlipTracker()

        # Buffer of observed calls, bounded by ``capacity`` windows in total; only the
        # writer thread (or a drain for drift) turns them into rows.
        self._buf: deque[Batch] = deque()
        self._buf_rows = 0
        self._buf_lock = threading.Lock()
        # Guards the current profile, its interval and file writes; taken before _buf_lock.
        self.lock = threading.RLock()
        self._profile = profiles.RollingProfile(
            columns,
            metadata={
                "classes": json.dumps(list(card.classes)),
                "channels": json.dumps(list(card.channels)),
                "model": card.name,
                "writer": self.name,
            },
        )
        self.interval_start = now_utc()
        self._persisted_rows = 0
        self._persisted_at = time.monotonic()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._start_lock = threading.Lock()
        self.rows_observed = 0
        self.rows_dropped = 0
        self.rows_written = 0
        self.files_written: list[Path] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the writer thread (idempotent; no-op after :meth:`close`)."""
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            with self.lock:
                self.interval_start = now_utc()
            self._thread = threading.Thread(
                target=self._run, name=f"har-monitor-{self.name}", daemon=True
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
            if self.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    self.drain_locked()
                    self._roll_locked(now_utc())
                finally:
                    self.lock.release()
            else:
                log.error("monitoring: could not write the final profile within %.1f s", timeout)
        except Exception:
            log.exception("monitoring: writing the final profile failed")
        atexit.unregister(self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- request path
    def observe(self, windows: np.ndarray, probs: np.ndarray, sequence_key: str | None) -> None:
        """Queue ``(N, window, 6)`` windows and their ``(N, n_classes)`` output; never blocks."""
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
            now = time.time()
            with self.lock:
                roll_at = self.interval_start.timestamp() + self.interval_s
            persist_in = self._persisted_at + self.persist_s - time.monotonic()
            waits = [self.drain_s, roll_at - now] + ([persist_in] if self.persist_s else [])
            self._wake.wait(max(0.0, min(waits)))
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self.lock:
                    self.drain_locked()
                    if time.time() >= self.interval_start.timestamp() + self.interval_s:
                        self._roll_locked(now_utc())
                    elif self.persist_s and time.monotonic() >= self._persisted_at + self.persist_s:
                        self._persist_locked()
            except Exception:
                # Monitoring must not take the service down; the error is logged
                # and the rows of a failed batch are counted as dropped.
                log.exception("monitoring: profiling a batch failed")
                self._stop.wait(self.drain_s)

    def drain_locked(self) -> None:
        """Profile every buffered window into the current profile (caller holds ``lock``)."""
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
        pred = rows[:, self._pred_col].astype(np.int64)
        counts = np.bincount(pred, minlength=len(self._pred_counters))
        for k in np.flatnonzero(counts[: len(self._pred_counters)]):
            self._pred_counters[k].inc(int(counts[k]))
        observe_many(self._metrics.confidence, rows[:, self._conf_col])

    def _rows(self, batches: list[Batch]) -> np.ndarray:
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

    def partial_path(self) -> Path:
        """This worker's partial file of the open interval."""
        return store.partial_path(self.profile_dir, self.interval_start, self.name)

    def _persist_locked(self) -> None:
        """Overwrite the partial file with the open interval's rows, if any are new."""
        self._persisted_at = time.monotonic()
        if self._profile.rows == self._persisted_rows:
            return
        profiles.write_bytes(self._profile.to_bytes(), self.partial_path())
        self._persisted_rows = self._profile.rows

    def _roll_locked(self, end: datetime) -> Path | None:
        """Write the current profile as the file of ``[interval start, end]`` and start a new one.

        The final file is in place before the partial goes, and readers skip a partial
        whose final file exists: no moment where a row is in neither or counted twice.
        """
        path = None
        if self._profile.rows:
            path = store.profile_path(self.profile_dir, self.interval_start, end, self.name)
            profiles.write_bytes(self._profile.to_bytes(), path)
            self.rows_written += self._profile.rows
            self.files_written.append(path)
            self._metrics.profile_files.inc()
            self._profile.reset()
        if self._persisted_rows:
            self.partial_path().unlink(missing_ok=True)
            self._persisted_rows = 0
        self.interval_start = end
        return path

    def flush(self) -> None:
        """Log buffered rows into the current profile now (tests, drift)."""
        with self.lock:
            self.drain_locked()

    @property
    def pending_rows(self) -> int:
        """Rows logged into the open interval's profile so far."""
        return self._profile.rows

    def parts(
        self, since: datetime | None, until: datetime | None, *, drain: bool = True
    ) -> tuple[list[ProfileFile], tuple[ProfileFile, ProfileView] | None]:
        """Every worker's files overlapping ``[since, until]`` and this worker's open interval.

        Taken together under the writer's lock, so a roll-over cannot put a row in
        both or neither. This worker's partial file is left out: the open interval
        comes from memory (fresher). ``drain``: log buffered windows first.
        """
        with self.lock:
            if drain:
                self.drain_locked()
            now = now_utc()
            pending = None
            in_range = (until is None or self.interval_start <= until) and (
                since is None or now >= since
            )
            if self._profile.rows and in_range:
                part = ProfileFile(
                    self.partial_path(), self.interval_start, now, self.name, partial=True
                )
                pending = (part, self._profile.snapshot())
            files = store.list_profiles(self.profile_dir, since, until, skip_partial_of=self.name)
        return files, pending


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
