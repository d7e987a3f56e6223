"""Input drift, confidence and stability of an interval of served windows, from profiles.

Drift of a feature is the Hellinger distance between its distribution in the
reference profile (the training windows) and in the merged production
profile, both read from the profiles' KLL sketches:

* the bins are equal-mass bins of the *reference* (its KLL quantiles), plus one
  open bin below the reference minimum and one above its maximum. Values outside
  the training range (milli-g sent as m/s², a dead channel's zero std) land in
  those tails, where the reference has no mass, and push the distance to 1; an
  outlier in production cannot stretch the bins the way min..max bins do;
* the number of bins follows the production rows (``rows / rows_per_bin``,
  clipped to ``[min_bins, max_bins]``), so the distance of two samples of the
  same distribution stays small for small intervals (its bias is about
  ``sqrt(bins / (8 · rows))``).

whylogs' own Hellinger (``whylogs.viz.drift``) cannot be used: ``whylogs.viz``
imports IPython at import time; it would also use min..max bins.

The distance is 0 for identical distributions and 1 for disjoint ones. A
feature drifts when its distance reaches its threshold (``HAR_DRIFT_THRESHOLD``,
or a per-feature override) and the interval holds at least
``HAR_DRIFT_MIN_ROWS`` rows.

A long interval reacts slowly: when a fraction ``f`` of its windows is broken
(out of the reference range) and the rest healthy, the distance is about
``sqrt(1 - sqrt(1 - f))``: 0.54 for a half-broken interval, and 0.7 is reached
only at ``f`` ≈ 0.74. So the *recent* part of the interval is scored too: the
profiles that began within its last ``recent_s`` seconds (the last
``HAR_PROFILE_INTERVAL_S``: each worker's latest profile interval). A feature also
drifts when that part holds ``min_rows`` rows and scores at or above the
threshold (:func:`evaluate`); a half-broken 900-s window, whose last 300-s
profiles are all broken, is then flagged. Right after a roll-over, while the
newest profiles hold fewer than ``min_rows`` rows, the recent part reaches back
one more interval, so the status does not flap at every roll-over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from har.monitoring import profiles
from har.monitoring.features import CONFIDENCE, FLIP, PRED_CLASS, input_feature_names
from har.monitoring.profiles import Distribution, ProfileView
from har.monitoring.store import ProfileFile
from har.settings import Settings

OK = "ok"
DRIFT = "drift"
INSUFFICIENT = "insufficient_data"
STATUSES: tuple[str, ...] = (OK, DRIFT, INSUFFICIENT)


@dataclass(frozen=True)
class DriftConfig:
    """How drift is decided.

    Attributes:
        threshold: Hellinger distance (0..1) at which a feature drifts.
        min_rows: fewer production rows than this → ``insufficient_data``.
        uncertain_below: a window with a lower confidence counts as uncertain.
        overrides: per-feature thresholds, e.g. ``{"gyro_x_mean": 0.5}``.
        rows_per_bin, min_bins, max_bins: bin count = rows / rows_per_bin, clipped.
    """

    threshold: float = 0.7
    min_rows: int = 100
    uncertain_below: float = 0.6
    overrides: Mapping[str, float] = field(default_factory=dict)
    rows_per_bin: int = 10
    min_bins: int = 4
    max_bins: int = 20

    @classmethod
    def from_settings(
        cls, settings: Settings, overrides: Mapping[str, float] | None = None
    ) -> DriftConfig:
        """The config of ``HAR_DRIFT_THRESHOLD``, ``HAR_DRIFT_MIN_ROWS``, ``HAR_UNCERTAIN_BELOW``."""
        return cls(
            threshold=settings.drift_threshold,
            min_rows=settings.drift_min_rows,
            uncertain_below=settings.uncertain_below,
            overrides=dict(overrides or {}),
        )

    def threshold_of(self, feature: str) -> float:
        return float(self.overrides.get(feature, self.threshold))

    def bins_for(self, rows: int) -> int:
        return int(np.clip(rows // self.rows_per_bin, self.min_bins, self.max_bins))


def hellinger(reference: Distribution, production: Distribution, bins: int) -> float:
    """Hellinger distance (0..1) over ``bins`` equal-mass bins of ``reference`` plus two tails."""
    inner = reference.quantiles(np.arange(1, bins) / bins)
    edges = np.unique(
        np.concatenate([[reference.min], inner, [np.nextafter(reference.max, math.inf)]])
    )
    return hellinger_pmf(reference.pmf(edges), production.pmf(edges))


def hellinger_pmf(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance of two probability vectors over the same bins (renormalised)."""
    p = np.clip(np.asarray(p, np.float64), 0.0, None)
    q = np.clip(np.asarray(q, np.float64), 0.0, None)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p, q = p / p.sum(), q / q.sum()
    return float(np.clip(math.sqrt(0.5 * np.square(np.sqrt(p) - np.sqrt(q)).sum()), 0.0, 1.0))


def _num(x: float | None) -> float | None:
    """JSON-safe number: NaN/inf → None."""
    return None if x is None or not math.isfinite(x) else float(x)


def class_mix_distance(reference: ProfileView, production: ProfileView) -> float | None:
    """Hellinger distance between the predicted-class mixes (informative; not a drift input)."""
    ref, prod = (
        profiles.int_counts(reference, PRED_CLASS),
        profiles.int_counts(production, PRED_CLASS),
    )
    keys = sorted(set(ref) | set(prod))
    if not keys or not ref or not prod:
        return None
    p, q = np.array([ref.get(k, 0) for k in keys]), np.array([prod.get(k, 0) for k in keys])
    return _num(hellinger_pmf(p, q))


def summarise(
    reference: ProfileView | None,
    production: ProfileView,
    config: DriftConfig,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    features: Sequence[str] | None = None,
    recent: ProfileView | None = None,
    recent_since: datetime | None = None,
) -> dict[str, Any]:
    """Compare a merged production profile with the reference profile.

    Args:
        reference: profile of the training windows, or ``None`` if the model has none.
        production: merged profile of the interval's served windows.
        config: thresholds and bins.
        since, until: the interval (echoed in the answer, ISO 8601 UTC).
        features: input features to compare (default: every per-channel statistic
            and the two magnitudes).
        recent: merged profile of the interval's recent part (see the module
            docstring), or ``None`` to score the whole interval only.
        recent_since: where the recent part starts (echoed).

    Returns:
        The answer of ``GET /monitoring/drift``: ``status`` (``ok`` | ``drift`` |
        ``insufficient_data``), ``rows``, ``features`` (``name``, ``score``,
        ``recent_score``, ``threshold``, ``drifted``), ``recent`` (``rows``, ``since``),
        ``confidence`` (``mean``, ``uncertain_share``), ``stability`` (``flip_rate``,
        ``pairs``), ``interval``, ``reference_rows``, ``activities`` (predicted class
        → windows) and ``outputs`` (informative distances of the predicted-class mix
        and of the confidence). Scores are ``None`` where a side has no values;
        ``recent_score`` is ``None`` when the recent part was not scored.
    """
    rows = profiles.row_count(production)
    recent_rows = profiles.row_count(recent) if recent is not None else 0
    names = list(features) if features is not None else input_feature_names()
    classes = profiles.classes_of(production) or (
        profiles.classes_of(reference) if reference is not None else None
    )
    bins = config.bins_for(rows)
    scored: list[dict[str, Any]] = []
    for name in names:
        score = _feature_score(reference, production, name, bins)
        recent_score = (
            _feature_score(reference, recent, name, config.bins_for(recent_rows))
            if recent is not None and recent_rows >= config.min_rows
            else None
        )
        thr = config.threshold_of(name)
        whole = score is not None and rows >= config.min_rows and score >= thr
        scored.append(
            {
                "name": name,
                "score": score,
                "recent_score": recent_score,
                "threshold": thr,
                "drifted": bool(whole or (recent_score is not None and recent_score >= thr)),
            }
        )
    if reference is None or rows < config.min_rows:
        status = INSUFFICIENT
    else:
        status = DRIFT if any(f["drifted"] for f in scored) else OK

    conf = profiles.distribution(production, CONFIDENCE)
    flips = profiles.distribution(production, FLIP)
    counts = profiles.int_counts(production, PRED_CLASS)
    ref_conf = profiles.distribution(reference, CONFIDENCE) if reference is not None else None
    answer: dict[str, Any] = {
        "status": status,
        "rows": rows,
        "features": scored,
        "confidence": {
            "mean": _num(conf.mean) if conf else None,
            "uncertain_share": (
                _num(float(conf.cdf([config.uncertain_below])[0])) if conf else None
            ),
            "uncertain_below": config.uncertain_below,
        },
        "stability": {
            "flip_rate": _num(flips.mean) if flips else None,
            "pairs": flips.n if flips else 0,
        },
        "interval": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
        "recent": {
            "rows": recent_rows,
            "since": recent_since.isoformat() if recent is not None and recent_since else None,
        },
        "reference_rows": profiles.row_count(reference) if reference is not None else 0,
        "activities": {
            (classes[k] if classes and 0 <= k < len(classes) else str(k)): v
            for k, v in counts.items()
        },
        "outputs": {
            "class_mix_distance": (
                class_mix_distance(reference, production) if reference is not None else None
            ),
            "confidence_distance": (
                _num(hellinger(ref_conf, conf, bins)) if ref_conf and conf else None
            ),
        },
    }
    if reference is None:
        answer["reason"] = "the served model has no reference profile"
    elif rows < config.min_rows:
        answer["reason"] = f"{rows} rows in the interval, at least {config.min_rows} needed"
    return answer


def _feature_score(
    reference: ProfileView | None, production: ProfileView, name: str, bins: int
) -> float | None:
    if reference is None:
        return None
    ref_d, prod_d = profiles.distribution(reference, name), profiles.distribution(production, name)
    if ref_d is None or prod_d is None:
        return None
    return _num(hellinger(ref_d, prod_d, bins))


def evaluate(
    reference: ProfileView | None,
    parts: Sequence[tuple[ProfileFile, ProfileView]],
    config: DriftConfig,
    *,
    since: datetime,
    until: datetime,
    recent_s: float,
    features: Sequence[str] | None = None,
) -> tuple[dict[str, Any], ProfileView]:
    """Drift of an interval from its profile parts, with the recent-part check.

    Args:
        reference: the training windows' profile, or ``None``.
        parts: ``(file, profile)`` of every profile overlapping ``[since, until]``
            (a worker's open interval may be a file of its own, see
            :mod:`har.monitoring.store`).
        config: thresholds and bins.
        since, until: the interval (UTC).
        recent_s: parts that began at or after ``until - recent_s`` form the recent part
            (``until - 2 * recent_s`` when those hold fewer than ``min_rows`` rows).
        features: input features to compare (default: all).

    Returns:
        The :func:`summarise` answer and the merged profile of all parts.
    """
    production = profiles.merge_views(v for _, v in parts)
    rows = [profiles.row_count(v) for _, v in parts]
    # Just after a roll-over the newest profiles hold few rows: the previous interval
    # then counts as recent too, so a broken stream does not look healthy for a while.
    for k in (1, 2):
        recent_since = until - timedelta(seconds=k * recent_s)
        chosen = [i for i, (f, _) in enumerate(parts) if f.start >= recent_since]
        if sum(rows[i] for i in chosen) >= config.min_rows:
            break
    recent = (
        profiles.merge_views(parts[i][1] for i in chosen) if 0 < len(chosen) < len(parts) else None
    )
    answer = summarise(
        reference,
        production,
        config,
        since=since,
        until=until,
        features=features,
        recent=recent,
        recent_since=recent_since,
    )
    return answer, production
