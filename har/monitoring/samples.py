"""Served windows kept for labelling: a bounded, opt-in sample with the reason for each.

Profiles are sketches; to label what production sees, the windows themselves are needed.
With ``HAR_SAMPLE_DIR`` set, each API worker's :class:`SampleKeeper` keeps a served window
when

* ``uncertain``: its (calibrated) confidence is below ``HAR_UNCERTAIN_BELOW``;
* ``shadow_disagreement``: the shadow model predicted another class (known only after the
  shadow has answered, off the response path; such a window is taken back from the scaled
  model input, ``x * scale + mean``, exact to float32 round-off);
* ``drift``: the worker's last drift refresh (``HAR_DRIFT_EVERY_S``) found input drift in
  the recent interval: every window served while that status holds is a candidate, kept
  with the ``HAR_SAMPLE_DRIFT_SHARE`` probability;
* ``random``: a uniform ``HAR_SAMPLE_RANDOM_SHARE`` of all windows, whatever else holds (so
  that estimates from the sample can be made unbiased).

A window kept for several reasons is stored once, with all of them (``"uncertain+random"``).
Each kept window carries its samples in canonical units (m/s², deg/s, after the unit
conversion, before the card's scaler: what was scored), the UTC time, the served model's
tag, the prediction and confidence as answered, the shadow's prediction when known and the
units the request declared. Never the caller's token or address: the keeper is never given
them.

Files: a writer thread appends kept windows to memory and writes them every
``HAR_SAMPLE_FLUSH_S`` seconds (and on shutdown) as one ``.npz`` segment
``<worker_id>.<pid>.<host>-<UTC time>-<n>.npz``, written to a temporary name and renamed
(a crash leaves whole segments only). Replicas sharing a volume write different names (the
host is in them, as for profiles). Each worker keeps its own segments, and those of earlier
processes in its slot (same worker id and host), under ``HAR_SAMPLE_MAX_MB``, deleting the
oldest first; deleted windows are counted in ``har_samples_dropped_total``, kept ones in
``har_samples_kept_total{reason}``. ``python -m har samples export`` reads the segments
(:func:`~har.monitoring.sample_files.read_samples`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from har.domain.card import Units
from har.monitoring import store
from har.monitoring.metrics import sample_metrics
from har.monitoring.sample_files import Segment, list_segments

log = logging.getLogger(__name__)

UNCERTAIN = "uncertain"
SHADOW = "shadow_disagreement"
DRIFT = "drift"
RANDOM = "random"
REASONS: tuple[str, ...] = (UNCERTAIN, SHADOW, DRIFT, RANDOM)
#: Uniform draws taken from the generator at once (:meth:`SampleKeeper._draws`).
DRAW_BLOCK = 4096


class SampleKeeper:
    """One API worker's sample of served windows (see the module docstring).

    Args:
        directory: ``HAR_SAMPLE_DIR`` (created).
        model: the served model's tag.
        classes: the card's classes (predictions are stored by name).
        uncertain_below: confidence below which a window is ``uncertain``.
        random_share: probability of keeping any window (``random``).
        drift_share: probability of keeping a window served while ``drifting()``.
        max_bytes: bound of this worker slot's segments on disk.
        flush_s: seconds between segment writes.
        worker_id: names the files (``<worker_id>.<pid>.<host>``).
        drifting: ``True`` while the recent interval's input drifted (the monitor's last
            refresh); ``None``: never.
        seed: of the random choices (tests).
    """

    def __init__(
        self,
        directory: Path,
        *,
        model: str,
        classes: Iterable[str],
        uncertain_below: float,
        random_share: float,
        drift_share: float,
        max_bytes: int,
        flush_s: float,
        worker_id: str | None = None,
        drifting: Callable[[], bool] | None = None,
        seed: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.classes = np.asarray(list(classes))
        self.uncertain_below = uncertain_below
        self.random_share = random_share
        self.drift_share = drift_share
        self.max_bytes = int(max_bytes)
        self.flush_s = flush_s
        self.writer = store.writer_name(worker_id, os.getpid())
        self.drifting = drifting or (lambda: False)
        self._rng = np.random.default_rng(seed)
        self._block = np.empty(0)  # uniform draws ahead (_draws)
        self._drawn = 0
        self._lock = threading.Lock()
        self._pending: list[_Kept] = []
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics = sample_metrics()
        self._kept_by = {r: self._metrics.kept.labels(r) for r in REASONS}  # no lookup per call
        self.kept = 0
        self.dropped = 0

    # ------------------------------------------------------------------ offering
    def offer(
        self,
        canonical: np.ndarray,
        probs: np.ndarray,
        units: Units | None,
        *,
        predicted: np.ndarray | None = None,
        confidence: np.ndarray | None = None,
    ) -> int:
        """Keep those of ``N`` served windows with a reason; return how many. Never blocks
        on I/O.

        Args:
            canonical: ``(N, window, 6)`` float32 as scored, canonical units (m/s², deg/s).
            probs: ``(N, n_classes)`` probabilities as answered (calibrated when served so).
            units: the units the request declared (``None``: not known; stored as ``""``).
            predicted, confidence: ``probs.argmax(axis=1)`` and ``probs.max(axis=1)`` when
                the caller has them already (the scorer's answer): not computed again.

        This runs on the request path of every served window, so the usual single-window
        call is decided in plain Python: a window that is not kept costs a comparison and a
        random draw taken from a block drawn ahead (:meth:`_draws`); a kept one a copy of
        its samples and a tuple more.
        """
        n = len(probs)
        if n == 0:
            return 0
        if confidence is None:
            confidence = probs.max(axis=1)
        drifting = self.drift_share > 0 and self.drifting()
        if n == 1:  # the usual request: one window
            why = [UNCERTAIN] if confidence[0] < self.uncertain_below else []
            if drifting and self._draws(1)[0] < self.drift_share:
                why.append(DRIFT)
            if self.random_share > 0 and self._draws(1)[0] < self.random_share:
                why.append(RANDOM)
            if not why:
                return 0
            keep = None
            reasons = ["+".join(why)]
        else:
            # one boolean mask per reason, in REASONS order; reason strings for kept windows
            masks: list[tuple[np.ndarray, str]] = [(confidence < self.uncertain_below, UNCERTAIN)]
            if drifting:
                masks.append((self._draws(n) < self.drift_share, DRIFT))
            if self.random_share > 0:
                masks.append((self._draws(n) < self.random_share, RANDOM))
            kept = masks[0][0]
            for mask, _ in masks[1:]:
                kept = kept | mask
            if not kept.any():
                return 0
            keep = np.flatnonzero(kept)
            reasons = ["+".join(r for mask, r in masks if mask[i]) for i in keep.tolist()]
        if predicted is None:
            predicted = probs.argmax(axis=1)
        if keep is None:  # all (one) of them: a copy, the caller's array may be reused
            windows = np.array(canonical, np.float32)
        else:
            windows = np.asarray(canonical[keep], np.float32)  # a copy (fancy indexing)
            predicted, confidence = predicted[keep], confidence[keep]
        self._append(windows, predicted, confidence, reasons, units, shadow=None)
        return len(reasons)

    def _draws(self, n: int) -> np.ndarray:
        """The next ``n`` uniform draws in [0, 1) of the keeper's generator, taken from a
        block drawn ahead: one generator call per :data:`DRAW_BLOCK` windows, not one per
        request (each call takes the generator's lock and the GIL again; the cost is in
        docs/calibration.md). The same sequence as drawing ``n`` at a time."""
        with self._lock:
            if self._drawn + n > len(self._block):
                rest = self._block[self._drawn :]
                self._block = np.concatenate([rest, self._rng.random(max(n, DRAW_BLOCK))])
                self._drawn = 0
            out = self._block[self._drawn : self._drawn + n]
            self._drawn += n
        return out

    def offer_disagreement(
        self, canonical: np.ndarray, probs: np.ndarray, shadow_classes: np.ndarray
    ) -> int:
        """Keep the windows on which the shadow predicted another class (``shadow_classes``:
        the shadow's class names, ``(N,)``); ``canonical`` and ``probs`` as :meth:`offer`."""
        mine = self.classes[probs.argmax(axis=1)]
        keep = np.flatnonzero(mine != np.asarray(shadow_classes))
        if len(keep):
            shadow = np.asarray(shadow_classes)[keep].astype(str)
            kept_probs = probs[keep]
            self._append(
                np.asarray(canonical[keep], np.float32),
                kept_probs.argmax(axis=1),
                kept_probs.max(axis=1),
                [SHADOW] * len(keep),
                None,
                shadow=shadow,
            )
        return len(keep)

    def _append(
        self,
        windows: np.ndarray,
        predicted: np.ndarray,
        confidence: np.ndarray,
        reasons: list[str],
        units: Units | None,
        *,
        shadow: np.ndarray | None,
    ) -> None:
        """Hold kept windows (a copy of their own) until the next segment; per-window fields
        that are the same for the whole call (time, units) are expanded when the segment is
        written."""
        k = len(windows)
        record = _Kept(
            windows,
            time.time(),
            reasons,
            predicted,
            confidence,
            shadow,
            units.acc if units else "",
            units.gyro if units else "",
        )
        with self._lock:
            self._pending.append(record)
        if k == 1 and "+" not in reasons[0]:
            self._kept_by[reasons[0]].inc()
        else:
            counts = Counter(part for r in reasons for part in r.split("+"))
            for reason, m in counts.items():  # one increment per reason and call
                self._kept_by[reason].inc(m)
        self.kept += k

    # ------------------------------------------------------------------ writing
    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"har-samples-{self.writer}", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:
                log.exception("samples: writing a segment failed")

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer and write what is pending. Idempotent; logs, never raises."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        try:
            self.flush()
        except Exception:
            log.exception("samples: writing the last segment failed")

    def flush(self) -> Path | None:
        """Write the pending windows as one segment (atomically), then hold the disk bound."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return None
        arrays = _segment_arrays(pending, self.model, self.classes)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._seq += 1
        path = self.directory / f"{self.writer}-{stamp}-{self._seq}.npz"
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        self._hold_bound()
        return path

    def _mine(self, seg: Segment) -> bool:
        """A segment of this worker slot: same worker id and host, any process."""
        w_id, _, rest = self.writer.partition(".")
        s_id, _, s_rest = seg.writer.partition(".")
        return s_id == w_id and rest.partition(".")[2] == s_rest.partition(".")[2]

    def _hold_bound(self) -> None:
        mine = [s for s in list_segments(self.directory) if self._mine(s)]
        sizes = [s.path.stat().st_size for s in mine]
        total = sum(sizes)
        for seg, size in zip(mine, sizes, strict=True):
            if total <= self.max_bytes:
                break
            try:
                with np.load(seg.path) as f:
                    n = len(f["reason"])
                seg.path.unlink()
            except OSError:
                continue
            total -= size
            self.dropped += n
            self._metrics.dropped.inc(n)


class _Kept(NamedTuple):
    """The windows kept by one call, waiting for the next segment (a tuple: one is made
    per kept request, and a frozen dataclass costs several times more to build)."""

    windows: np.ndarray  # (k, window, 6) float32, canonical units, the keeper's own copy
    time: float  # epoch seconds of the call
    reasons: list[str]  # per window, "uncertain+random"
    predicted: np.ndarray  # (k,) class index as answered
    confidence: np.ndarray  # (k,) as answered
    shadow: np.ndarray | None  # (k,) the shadow's class names, None: not known
    acc_unit: str
    gyro_unit: str


def _segment_arrays(pending: list[_Kept], model: str, classes: np.ndarray) -> dict[str, Any]:
    """The arrays of one segment (``windows`` and :data:`FIELDS`) from the held calls."""
    sizes = np.array([len(p.windows) for p in pending])
    total = int(sizes.sum())
    return {
        "windows": np.concatenate([p.windows for p in pending]),
        "time": np.repeat(np.array([p.time for p in pending]), sizes),
        "reason": np.array([r for p in pending for r in p.reasons], dtype=str),
        "model": np.full(total, model),
        "prediction": classes[np.concatenate([p.predicted for p in pending])],
        "confidence": np.concatenate([p.confidence for p in pending]).astype(np.float32),
        "shadow_prediction": (
            np.concatenate(
                [p.shadow if p.shadow is not None else np.full(len(p.windows), "") for p in pending]
            )
            if any(p.shadow is not None for p in pending)
            else np.full(total, "")
        ),
        "acc_unit": np.repeat(np.array([p.acc_unit for p in pending], dtype=str), sizes),
        "gyro_unit": np.repeat(np.array([p.gyro_unit for p in pending], dtype=str), sizes),
    }
