"""The monitor of one service worker: its profile writer, drift kept current, the drift report.

* :class:`~har.monitoring.writer.ProfileWriter` profiles every served window
  off the request path and writes the profiles (final and partial files).
* Drift (:meth:`Monitor.drift`) merges every worker's files of an interval with
  this worker's open interval (from memory) and compares them with the
  reference profile (:func:`har.monitoring.drift.evaluate`).
* A background thread recomputes drift every ``HAR_DRIFT_EVERY_S`` over the last
  ``HAR_DRIFT_WINDOW_S`` and publishes the ``har_drift_*`` gauges
  (:mod:`har.monitoring.publish`), so nobody needs to call ``GET /monitoring/drift``.
* :meth:`Monitor.report_html` renders the drift report page from the live
  profiles, cached for ``HAR_REPORT_CACHE_S`` per interval.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.monitoring import profiles, report, store
from har.monitoring.drift import DriftConfig, evaluate
from har.monitoring.features import feature_names, input_feature_names
from har.monitoring.metrics import HarMetrics, get_metrics
from har.monitoring.profiles import ProfileView
from har.monitoring.publish import publish_drift
from har.monitoring.reference import read_reference_profile
from har.monitoring.store import ProfileFile
from har.monitoring.writer import ProfileWriter, now_utc
from har.settings import Settings

log = logging.getLogger(__name__)

#: ``(file, profile)``: one profile of an interval (a file, or the open interval in memory).
Part = tuple[ProfileFile, ProfileView]


class Monitor:
    """Profiles every served window and answers drift questions for one worker.

    Args:
        card: the served model's card (channels, classes).
        settings: ``profile_*``, ``drift_*``, ``uncertain_below``, ``report_cache_s``.
        reference_path: the model's reference profile (``None``: drift answers
            ``insufficient_data``).
        worker_id: distinguishes this worker's files from other workers' (the
            process id is always added).
        thresholds: per-feature drift thresholds overriding ``settings.drift_threshold``.
        drain_s: how often the writer logs buffered windows into the current profile
            (Prometheus counters lag by at most this; drift calls drain first).
        batch_rows: buffered windows that wake the writer before ``drain_s``.
    """

    def __init__(
        self,
        card: ModelCard,
        settings: Settings,
        reference_path: Path | None,
        *,
        worker_id: str | None = None,
        thresholds: Mapping[str, float] | None = None,
        drain_s: float = 2.0,
        batch_rows: int = 2000,
    ) -> None:
        self.card = card
        self.settings = settings
        self.config = DriftConfig.from_settings(settings, thresholds)
        self.reference_path = Path(reference_path) if reference_path is not None else None
        self.features = input_feature_names(card.channels)
        self.every_s = float(settings.drift_every_s)
        self.window_s = float(settings.drift_window_s)
        self.report_cache_s = float(settings.report_cache_s)
        self.started_at = now_utc()
        self._metrics: HarMetrics = get_metrics()
        self._writer = ProfileWriter(
            card,
            settings,
            feature_names(card.channels),
            self._metrics,
            worker_id=worker_id,
            drain_s=drain_s,
            batch_rows=batch_rows,
        )
        self._reference: ProfileView | None = None
        self._reference_loaded = False
        self._view_cache: OrderedDict[tuple[Path, int, int], ProfileView] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._refresh_stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._report_lock = threading.Lock()
        self._reports: dict[tuple[int, int], tuple[float, str]] = {}
        #: ``(since, until) -> GET /monitoring/shadow answer`` (set by har/shadow): the
        #: report gains a shadow section.
        self.shadow_answer: Any = None
        #: The last drift refresh found input drift (windows kept for labelling say so).
        self.drifting = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the writer thread and, if ``drift_every_s`` > 0, the drift refresher."""
        self._writer.start()
        if self.every_s > 0 and self._refresher is None and not self.closed:
            self._refresher = threading.Thread(
                target=self._refresh_loop, name=f"har-drift-{self.writer}", daemon=True
            )
            self._refresher.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the refresher, write every buffered row into a final profile file.

        Idempotent, never raises; see :meth:`ProfileWriter.close`.
        """
        self._refresh_stop.set()
        if self._refresher is not None and self._refresher is not threading.current_thread():
            self._refresher.join(timeout / 2)
        self._writer.close(timeout)

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
        self._writer.observe(windows, probs, sequence_key)

    def flush(self) -> None:
        """Log buffered rows into the current profile now (tests, drift)."""
        self._writer.flush()

    @property
    def closed(self) -> bool:
        return self._writer.closed

    @property
    def writer(self) -> str:
        """This worker's writer id in file names (``<worker_id>.<pid>.<host>``)."""
        return self._writer.name

    @property
    def profile_dir(self) -> Path:
        return self._writer.profile_dir

    @property
    def rows_observed(self) -> int:
        return self._writer.rows_observed

    @property
    def rows_dropped(self) -> int:
        return self._writer.rows_dropped

    @property
    def rows_written(self) -> int:
        """Rows written into final profile files so far."""
        return self._writer.rows_written

    @property
    def files_written(self) -> list[Path]:
        return self._writer.files_written

    @property
    def pending_rows(self) -> int:
        return self._writer.pending_rows

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
        # Final files never change; partial files are rewritten in place: the key
        # holds modification time and size.
        st = path.stat()
        key = (path, st.st_mtime_ns, st.st_size)
        with self._cache_lock:
            view = self._view_cache.pop(key, None)
        if view is None:
            view = profiles.read_view(path)
        with self._cache_lock:
            self._view_cache[key] = view
            while len(self._view_cache) > 64:
                self._view_cache.popitem(last=False)
        return view

    def production_parts(
        self, since: datetime | None = None, until: datetime | None = None, *, drain: bool = True
    ) -> list[Part]:
        """Every worker's profiles overlapping ``[since, until]``, oldest first: their files
        (final, and partial for the others' open intervals) and this worker's open interval."""
        for attempt in range(3):
            files, pending = self._writer.parts(since, until, drain=drain)
            try:
                parts = [(f, self._read_cached(f.path)) for f in files]
            except FileNotFoundError:
                # A partial removed at another worker's roll-over: its final file is there now.
                if attempt == 2:
                    raise
                continue
            return parts + ([pending] if pending is not None else [])
        raise AssertionError("unreachable")

    def _evaluate(
        self, since: datetime, until: datetime, *, drain: bool = True
    ) -> tuple[dict[str, Any], ProfileView, list[Part]]:
        parts = self.production_parts(since, until, drain=drain)
        answer, production = evaluate(
            self.reference(),
            parts,
            self.config,
            since=since,
            until=until,
            recent_s=self._writer.interval_s,
            features=self.features,
        )
        return answer, production, parts

    def drift(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """Drift, confidence and stability of the windows served in ``[since, until]``.

        Args:
            since: start (UTC; naive = UTC); default: when this monitor was created.
            until: end; default: now.

        Returns:
            The ``GET /monitoring/drift`` answer (see :func:`har.monitoring.drift.summarise`).
            When the service refreshes drift itself (``drift_every_s`` > 0) the gauges
            keep describing its window; otherwise they describe this interval.
        """
        since = store.as_utc(since) or self.started_at
        until = store.as_utc(until) or now_utc()
        answer = self._evaluate(since, until)[0]
        if self.every_s <= 0:
            publish_drift(self._metrics, answer)
        return answer

    def refresh_drift(self) -> dict[str, Any]:
        """Drift of the last ``drift_window_s`` seconds, published as the ``har_drift_*`` gauges.

        Reads what the writers have logged (at most ``drain_s`` behind); does not
        drain this worker's buffer, so it never profiles on the caller's thread.
        """
        until = now_utc()
        answer = self._evaluate(until - timedelta(seconds=self.window_s), until, drain=False)[0]
        publish_drift(self._metrics, answer)
        self.drifting = answer.get("status") == "drift"
        return answer

    def _refresh_loop(self) -> None:
        delay = 0.0
        while not self._refresh_stop.wait(delay):
            t0 = time.monotonic()
            try:
                self.refresh_drift()
            except Exception:
                log.exception("monitoring: refreshing drift failed")
            delay = max(0.0, self.every_s - (time.monotonic() - t0))

    # ---------------------------------------------------------------------- report
    def report_html(self, since: datetime | None = None, until: datetime | None = None) -> str:
        """The drift report page (as ``python -m har drift-report``) of the live profiles.

        Args:
            since: start (UTC); default: when this monitor was created.
            until: end; default: now.

        Returns:
            A self-contained HTML page. Pages are cached for ``report_cache_s``
            seconds per interval rounded to that many seconds, so refreshes under
            load reuse one rendering. Thread-safe (one rendering at a time).

        Raises:
            InputError: the served model has no reference profile.
        """
        reference = self.reference()
        if reference is None:
            raise InputError("the served model has no reference profile: no drift report")
        since = store.as_utc(since) or self.started_at
        key = (
            _bucket(since, self.report_cache_s),
            _bucket(until or now_utc(), self.report_cache_s),
        )
        with self._report_lock:
            now = time.monotonic()
            self._reports = {k: v for k, v in self._reports.items() if v[0] > now}
            if key in self._reports:
                return self._reports[key][1]
            answer, production, parts = self._evaluate(since, store.as_utc(until) or now_utc())
            shadow = self.shadow_answer(since, store.as_utc(until)) if self.shadow_answer else None
            page = report.render_page(
                reference,
                production,
                parts,
                answer,
                self.config,
                shadow,
                calibration=self.card.calibration,
            )
            if self.report_cache_s > 0:
                self._reports[key] = (now + self.report_cache_s, page)
            return page


def _bucket(t: datetime, seconds: float) -> int:
    """``t`` rounded down to a multiple of ``seconds`` (µs when ``seconds`` is 0)."""
    step = seconds if seconds > 0 else 1e-6
    return math.floor(t.timestamp() / step)
