"""whylogs, behind one small module: the only place in the project that imports it.

whylogs 1.6.4 is no longer developed; everything else in :mod:`har.monitoring`
sees plain numbers (:class:`Distribution`, counts) and opaque
:data:`ProfileView` objects, so replacing it touches this file only.

Known limits worked around here:

* string columns break with numpy 2 (``np.unicode_``), so the predicted class
  is logged as an int64 column and class names travel in the profile's metadata;
* one ``track`` call costs milliseconds whatever the row count, so callers log
  batches of many rows (see :class:`RollingProfile`);
* whylogs' default pandas path checks every value with a Python ``lambda``
  (per value, in Python); columns declared *homogeneous* skip that, so
  :class:`RollingProfile` declares every column and tracks NaN-free columns
  only (a column's NaNs are left out: they are "no value", e.g. the first
  window of a recording has no flip), several times faster; and only the metrics read
  here are kept (counts, types, distribution; frequent items and integer
  min/max for integer columns; no cardinality sketch);
* ``DatasetProfileView.merge`` updates the left view's metadata in place, so
  :func:`merge_views` always merges into a fresh empty view;
* two threads making their first sketch updates at the same time deadlocked
  (both stuck in ``kll_doubles_sketch.update`` while one imports numpy's C API
  lazily), and whylogs does not claim to be thread-safe: every call into it goes
  through one process-wide lock, and a tiny profile is logged at import time so
  the lazy initialisation happens on one thread;
* ``whylogs.core`` imports scikit-learn when it is installed (the dev venv has it),
  only for its experimental embedding metrics, which this package does not use, and
  that import would be most of a serving process's start (docs/runtime.md), so
  whylogs is imported here with scikit-learn hidden (:func:`_sklearn_hidden`), as it
  is in the image, which has no scikit-learn.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, cast

import numpy as np
import pandas as pd

from har.monitoring.features import PRED_CLASS

# Not a setting: whylogs reads this variable at import time to decide whether to send
# usage statistics home.
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")


@contextmanager
def _sklearn_hidden() -> Iterator[None]:
    """Inside: ``import sklearn`` raises ``ImportError``, unless it is already loaded.

    ``sys.modules["sklearn"] = None`` makes ``import sklearn.cluster`` fail, which
    ``whylogs.core.stubs`` answers with its stubs; the mark is removed on leaving, so a
    later ``import sklearn`` in this process works as usual.
    """
    hide = "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if hide:
            del sys.modules["sklearn"]


with _sklearn_hidden():
    from whylogs.core import DatasetProfile, DatasetProfileView
    from whylogs.core.datatypes import Fractional, Integral
    from whylogs.core.metrics import StandardMetric
    from whylogs.core.preprocessing import ColumnProperties
    from whylogs.core.resolvers import MetricSpec, ResolverSpec
    from whylogs.core.schema import DeclarativeSchema

#: A read-only whylogs profile (``whylogs.core.DatasetProfileView``).
ProfileView: TypeAlias = DatasetProfileView

#: Column always present in a profile written by this package; its count is the row count.
ROW_COUNT_COLUMN = "confidence"

#: Serialises every call into whylogs and its sketches (see the module docstring).
_LOCK = threading.RLock()


def _warm_up() -> None:
    """Exercise whylogs once (float, int and NaN columns, serialize, merge) on this thread."""
    with _LOCK:
        prof = DatasetProfile()
        prof.track(pandas=pd.DataFrame({"f": [0.5, np.nan, 1.5], "i": np.arange(3)}))
        view = DatasetProfileView.deserialize(prof.view().serialize())
        sketch = view.merge(view).get_column("f").get_metric("distribution").kll.value
        sketch.get_pmf([1.0])
        sketch.get_quantiles([0.5])


_warm_up()


@dataclass(frozen=True)
class Distribution:
    """A numeric column of a profile: exact count/mean/min/max plus its KLL quantile sketch.

    Values are in the column's own unit (m/s², deg/s, probability, nats, ...).
    """

    n: int
    mean: float
    min: float
    max: float
    _sketch: Any

    def quantiles(self, q: Sequence[float] | np.ndarray) -> np.ndarray:
        """Approximate quantiles at ranks ``q`` (each 0..1) → array of the same length."""
        with _LOCK:
            out = self._sketch.get_quantiles([float(x) for x in q])
        return np.asarray(out, dtype=np.float64)

    def pmf(self, split_points: Sequence[float] | np.ndarray) -> np.ndarray:
        """Mass of the ``m + 1`` intervals cut by ``m`` increasing split points.

        Intervals are ``(-inf, s0), [s0, s1), ..., [s_{m-1}, +inf)``; sums to 1.
        """
        with _LOCK:
            out = self._sketch.get_pmf([float(x) for x in split_points])
        return np.asarray(out, dtype=np.float64)

    def cdf(self, points: Sequence[float] | np.ndarray) -> np.ndarray:
        """Approximate share of values strictly below each point → array of the same length."""
        pts = [float(x) for x in points]
        with _LOCK:
            out = self._sketch.get_cdf(pts)
        return np.asarray(out, dtype=np.float64)[: len(pts)]


_COLUMN_METRICS = [MetricSpec(StandardMetric.counts.value), MetricSpec(StandardMetric.types.value)]
_RESOLVERS = [
    ResolverSpec(
        column_type=Integral,
        metrics=[
            *_COLUMN_METRICS,
            MetricSpec(StandardMetric.distribution.value),
            MetricSpec(StandardMetric.ints.value),
            MetricSpec(StandardMetric.frequent_items.value),
        ],
    ),
    ResolverSpec(
        column_type=Fractional,
        metrics=[*_COLUMN_METRICS, MetricSpec(StandardMetric.distribution.value)],
    ),
]


def _schema(columns: Sequence[str], int_columns: set[str]) -> DeclarativeSchema:
    """Every column declared homogeneous (float64, or int64 for ``int_columns``)."""
    types = {
        c: (np.int64 if c in int_columns else np.float64, ColumnProperties.homogeneous)
        for c in columns
    }
    return DeclarativeSchema(_RESOLVERS, types=types)


class RollingProfile:
    """A mutable profile that batches of feature rows are added to (not thread-safe).

    Args:
        columns: names of the ``F`` row columns (:func:`har.monitoring.features.feature_names`).
        metadata: strings stored in the profile (class names, worker id, ...).
        int_columns: columns logged as int64 (whylogs would break on strings).

    Values must be finite or NaN; NaN means "no value" and is not logged (so a
    column's count is its number of values, and may be below the row count).
    """

    def __init__(
        self,
        columns: Sequence[str],
        metadata: Mapping[str, str] | None = None,
        int_columns: Sequence[str] = (PRED_CLASS,),
    ) -> None:
        self.columns = list(columns)
        self.metadata = dict(metadata or {})
        self._int = {i for i, c in enumerate(self.columns) if c in set(int_columns)}
        with _LOCK:
            self._schema = _schema(self.columns, set(int_columns))
        self._profile = self._new_profile()
        self.rows = 0

    def _new_profile(self) -> DatasetProfile:
        with _LOCK:
            return DatasetProfile(schema=self._schema.copy(), metadata=dict(self.metadata))

    def track(self, rows: np.ndarray) -> None:
        """Add ``(N, F)`` float rows (NaN = no value) with as few whylogs calls as possible."""
        if rows.shape[0] == 0:
            return
        gaps = np.isnan(rows).any(axis=0)
        full: dict[str, np.ndarray] = {}
        partial: list[tuple[str, np.ndarray]] = []
        for i, c in enumerate(self.columns):
            col = rows[:, i]
            if gaps[i]:
                col = col[~np.isnan(col)]
                if col.size == 0:
                    continue
            if i in self._int:
                col = col.astype(np.int64)
            if gaps[i]:
                partial.append((c, col))
            else:
                full[c] = col
        frames = [pd.DataFrame(full, copy=False)] if full else []
        frames += [pd.DataFrame({c: col}, copy=False) for c, col in partial]
        with _LOCK:
            for frame in frames:
                self._profile.track(pandas=frame)
        self.rows += int(rows.shape[0])

    def to_bytes(self) -> bytes:
        """The profile so far in whylogs' binary format."""
        with _LOCK:
            return cast(bytes, self._profile.view().serialize())

    def snapshot(self) -> ProfileView:
        """An independent copy of the profile so far (later ``track`` calls do not change it)."""
        return deserialize(self.to_bytes())

    def reset(self) -> None:
        """Start an empty profile (same columns and metadata)."""
        self._profile = self._new_profile()
        self.rows = 0


def profile_rows(
    columns: Sequence[str],
    rows: np.ndarray,
    metadata: Mapping[str, str] | None = None,
) -> ProfileView:
    """Profile ``(N, F)`` feature rows at once (used for the reference profile)."""
    prof = RollingProfile(columns, metadata)
    prof.track(rows)
    return prof.snapshot()


def serialize(view: ProfileView) -> bytes:
    """The profile as whylogs' binary format (``.bin``)."""
    with _LOCK:
        return cast(bytes, view.serialize())


def deserialize(data: bytes) -> ProfileView:
    """Inverse of :func:`serialize`."""
    with _LOCK:
        return DatasetProfileView.deserialize(data)


def write_bytes(data: bytes, path: Path) -> None:
    """Write a serialized profile atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_view(view: ProfileView, path: Path) -> None:
    """Write a profile atomically."""
    write_bytes(serialize(view), path)


def read_view(path: Path) -> ProfileView:
    """Read a profile written by :func:`write_view` (or by whylogs' own writer)."""
    return deserialize(Path(path).read_bytes())


def empty_view() -> ProfileView:
    """A profile with no columns and no rows."""
    with _LOCK:
        return DatasetProfile().view()


def merge_views(views: Iterable[ProfileView]) -> ProfileView:
    """Merge profiles (same or overlapping columns) into a new one; an empty input → empty."""
    merged = empty_view()
    for v in views:
        with _LOCK:
            merged = merged.merge(v)
    return merged


def metadata(view: ProfileView) -> dict[str, str]:
    """The profile's metadata strings (a copy)."""
    return dict(view.metadata or {})


def classes_of(view: ProfileView) -> list[str] | None:
    """Class names stored in a profile's metadata by this package, if any."""
    text = metadata(view).get("classes")
    return list(json.loads(text)) if text else None


def columns(view: ProfileView) -> list[str]:
    """Column names present in the profile."""
    with _LOCK:
        return list(view.get_columns().keys())


def row_count(view: ProfileView) -> int:
    """Rows logged into the profile (count of :data:`ROW_COUNT_COLUMN`, 0 if absent)."""
    with _LOCK:
        col = view.get_column(ROW_COUNT_COLUMN)
        counts = col.get_metric("counts") if col is not None else None
        return int(counts.n.value) if counts is not None else 0


def distribution(view: ProfileView, column: str) -> Distribution | None:
    """The non-missing values of a numeric column, or ``None`` if absent or empty."""
    with _LOCK:
        col = view.get_column(column)
        dist = col.get_metric("distribution") if col is not None else None
        if dist is None or dist.kll.value.is_empty():
            return None
        sketch = dist.kll.value
        return Distribution(
            n=int(sketch.get_n()),
            mean=float(dist.mean.value),
            min=float(sketch.get_min_value()),
            max=float(sketch.get_max_value()),
            _sketch=sketch,
        )


def int_counts(view: ProfileView, column: str) -> dict[int, int]:
    """Count of each value of an integer column (exact while distinct values are few)."""
    with _LOCK:
        col = view.get_column(column)
        fi = col.get_metric("frequent_items") if col is not None else None
        items = fi.to_summary_dict().get("frequent_strings", []) if fi is not None else []
    return dict(sorted((int(float(i.value)), int(i.est)) for i in items))
