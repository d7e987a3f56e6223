"""The activity timeline: per-window class probabilities -> segments that tile time.

Pure NumPy; no model, no I/O, no settings read. :func:`build_timeline` is what ``/predict_recording``,
``python -m har predict`` and a closed ``StreamPredict`` call (via :func:`timeline_of`
and :class:`TimelineBuilder`), so every surface draws the same diary.

Geometry. Windows (``start_s``/``end_s`` seconds from the recording's first sample,
in time order) belong to gap-free stretches (``stretch`` ids, as
:attr:`har.domain.preprocessing.Windows.segment`). Consecutive windows of one stretch with
the same label form a segment. Segments tile each stretch without overlapping:

* between two windows of different labels the boundary is the middle of their
  overlap, ``(end_s[i] + start_s[i + 1]) / 2`` (half a window after the first
  window's centre for 4 s windows at a 2 s hop);
* a stretch's first segment starts at its first window's first sample; its last
  segment ends at ``stretch_end_s`` (the stretch's last sample) when given, else at
  the last window's last sample, ``end_s - sample_period_s``: never outside the
  recorded samples, never across a gap (a gap gets no segment);
* ``confidence`` is the mean, over the segment's windows, of the probability the
  model gave the segment's activity; ``summary`` is the sum of segment durations
  per activity (seconds).

Smoothing changes only the labels the segments are built from; the windows keep
their raw predictions. Method and parameters: a :class:`TimelineOptions` (the
service's from ``HAR_SMOOTHING`` etc. in :mod:`har.settings`); the methods
(``"none"``, ``"viterbi"``) are :mod:`har.domain.smoothing`'s.

Cost: ``O(N K)`` for ``N`` windows and ``K`` classes, one small NumPy step per window,
plus ``O(N)`` per merged short segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from har.domain.smoothing import (
    check_smoothing,
    label_runs,
    merge_short,
    run_bounds,
    viterbi,
)

if TYPE_CHECKING:
    from har.domain.preprocessing import Windows
    from har.settings import Settings


@dataclass(frozen=True)
class TimelineSegment:
    """One stretch of time with one activity.

    Attributes:
        start, end: seconds from the recording's first sample (``start < end``).
        activity, activity_id: the class name and its index in the card's classes.
        confidence: mean probability of ``activity`` over the segment's windows (0..1).
        windows: how many windows the segment is made of.
    """

    start: float
    end: float
    activity: str
    activity_id: int
    confidence: float
    windows: int

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of a segment (times to ms, confidence to 6 decimals)."""
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "activity": self.activity,
            "confidence": round(self.confidence, 6),
            "windows": self.windows,
        }


@dataclass(frozen=True)
class Timeline:
    """Segments in time order, the window labels they were built from, and how.

    Attributes:
        segments: non-overlapping, in time order, never across a gap.
        labels: ``(N,)`` int class index per window after smoothing (the raw argmax
            with ``smoothing="none"``).
        smoothing: the method used (one of :data:`~har.domain.smoothing.SMOOTHING_METHODS`).
    """

    segments: tuple[TimelineSegment, ...]
    labels: np.ndarray
    smoothing: str

    @property
    def summary(self) -> dict[str, float]:
        """Seconds per activity (sum of its segments' durations), largest first, to ms."""
        total: dict[str, float] = {}
        for s in self.segments:
            total[s.activity] = total.get(s.activity, 0.0) + s.duration
        return {k: round(v, 3) for k, v in sorted(total.items(), key=lambda kv: -kv[1])}

    def as_dicts(self) -> list[dict[str, Any]]:
        """Every segment as :meth:`TimelineSegment.as_dict`."""
        return [s.as_dict() for s in self.segments]


@dataclass(frozen=True)
class TimelineOptions:
    """How window labels are smoothed before segments are drawn (module docstring).

    Attributes:
        smoothing: one of :data:`~har.domain.smoothing.SMOOTHING_METHODS`.
        switch_penalty: nats an activity change costs in the Viterbi pass (>= 0).
        min_segment_s: shorter smoothed segments (seconds) join a neighbour (0: off).

    Defaults: those of ``HAR_SMOOTHING``, ``HAR_SWITCH_PENALTY``, ``HAR_MIN_SEGMENT_S``.
    """

    smoothing: str = "viterbi"
    switch_penalty: float = 6.0
    min_segment_s: float = 0.0

    def __post_init__(self) -> None:
        check_smoothing(self.smoothing)
        if self.switch_penalty < 0 or self.min_segment_s < 0:
            raise ValueError(f"switch_penalty and min_segment_s must be >= 0: {self}")

    @classmethod
    def from_settings(cls, settings: Settings) -> TimelineOptions:
        """The options of ``settings`` (``smoothing``, ``switch_penalty``, ``min_segment_s``)."""
        return cls(settings.smoothing, settings.switch_penalty, settings.min_segment_s)

    def override(
        self,
        smoothing: str | None = None,
        switch_penalty: float | None = None,
        min_segment_s: float | None = None,
    ) -> TimelineOptions:
        """These options with every argument that is not ``None`` replaced."""
        given = zip(
            ("smoothing", "switch_penalty", "min_segment_s"),
            (smoothing, switch_penalty, min_segment_s),
            strict=True,
        )
        changed: dict[str, Any] = {k: v for k, v in given if v is not None}
        return replace(self, **changed) if changed else self


def build_timeline(
    start_s: np.ndarray,
    end_s: np.ndarray,
    stretch: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    sample_period_s: float = 0.0,
    stretch_end_s: np.ndarray | None = None,
    options: TimelineOptions | None = None,
    smoothing: str | None = None,
    switch_penalty: float | None = None,
    min_segment_s: float | None = None,
) -> Timeline:
    """Segments that tile each gap-free stretch, from window probabilities.

    Args:
        start_s, end_s: ``(N,)`` window start and end (end = start + window length),
            seconds from the recording's first sample, in time order.
        stretch: ``(N,)`` id of the gap-free stretch of each window; the windows of one
            stretch are consecutive (:attr:`har.domain.preprocessing.Windows.segment`).
        probs: ``(N, K)`` softmax outputs (rows sum to ~1).
        classes: ``K`` class names, in softmax order.
        sample_period_s: seconds between samples; the last window of a stretch ends
            ``sample_period_s`` after its last sample, so segments end at that sample.
        stretch_end_s: optional ``(N,)`` time of the last sample of each window's
            stretch (the samples after the last window are then in the last segment).
        options: the method and its parameters (default: ``TimelineOptions()``).
        smoothing, switch_penalty, min_segment_s: override those fields of ``options``
            when not ``None`` (see :meth:`TimelineOptions.override`).

    Raises:
        ValueError: mismatched shapes, windows out of time order; an unknown method
            (an :class:`~har.domain.errors.InputError`, a ``ValueError``).
    """
    start = np.asarray(start_s, np.float64)
    end = np.asarray(end_s, np.float64)
    group = np.asarray(stretch)
    p = np.asarray(probs, np.float64)
    n = start.shape[0]
    if end.shape != (n,) or group.shape != (n,) or p.ndim != 2 or p.shape[0] != n:
        raise ValueError(
            f"start_s, end_s, stretch must be (N,) and probs (N, K): got {start.shape}, "
            f"{end.shape}, {group.shape}, {p.shape}"
        )
    if p.shape[1] != len(classes):
        raise ValueError(f"probs has {p.shape[1]} columns for {len(classes)} classes")
    if n > 1 and (np.any(np.diff(start) < 0) or np.any(end < start)):
        raise ValueError("windows must be in time order with end_s >= start_s")
    opts = (options or TimelineOptions()).override(smoothing, switch_penalty, min_segment_s)
    method, penalty, min_s = opts.smoothing, opts.switch_penalty, opts.min_segment_s
    if n == 0:
        return Timeline((), np.empty(0, np.int64), method)
    first = np.concatenate([[True], group[1:] != group[:-1]])
    last = np.concatenate([first[1:], [True]])
    tail = end - sample_period_s if stretch_end_s is None else np.asarray(stretch_end_s, float)
    tail = np.maximum(tail, start)  # a zero-length window still gets a segment
    geometry = (start, end, first, last, tail)
    if method == "none":
        labels = p.argmax(axis=1)
    else:
        labels = viterbi(p, first, penalty)
        if min_s > 0:
            labels = merge_short(labels, p, geometry, min_s)
    return Timeline(_segments(labels, p, classes, geometry), labels, method)


def timeline_of(
    windows: Windows, probs: np.ndarray, classes: Sequence[str], **options: Any
) -> Timeline:
    """:func:`build_timeline` for a :class:`har.domain.preprocessing.Windows` (keyword options pass on)."""
    return build_timeline(
        windows.start_s,
        windows.end_s,
        windows.segment,
        probs,
        classes,
        sample_period_s=1.0 / windows.sample_rate_hz,
        **options,
    )


def _segments(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    geometry: tuple[np.ndarray, ...],
) -> tuple[TimelineSegment, ...]:
    a, b = label_runs(labels, geometry[2])
    s, e = run_bounds(a, b, geometry)
    own = probs[np.arange(labels.shape[0]), labels]
    sums = np.add.reduceat(own, a)
    counts = b - a + 1
    return tuple(
        TimelineSegment(float(s0), float(e0), str(classes[c]), int(c), float(m / n), int(n))
        for s0, e0, c, m, n in zip(
            s.tolist(), e.tolist(), labels[a].tolist(), sums.tolist(), counts.tolist(), strict=True
        )
    )


class TimelineBuilder:
    """Collects a stream's windows and probabilities; :meth:`build` draws its timeline.

    For ``StreamPredict``: :meth:`add` each batch of windows as it is scored (memory:
    ``K + 3`` numbers per window, ~0.7 MB for 10 h at a 2 s hop with 7 classes), then
    :meth:`build` when the stream closes. Stretch ids are the windower's running
    segment numbers, so gaps in the stream split segments as in a recording.
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = list(classes)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._period = 0.0

    def __len__(self) -> int:
        return sum(p[0].shape[0] for p in self._parts)

    def add(self, windows: Windows, probs: np.ndarray) -> None:
        """Append windows ``(N, ...)`` (in stream order) and their ``(N, K)`` probabilities."""
        if len(windows) == 0:
            return
        self._period = 1.0 / windows.sample_rate_hz
        self._parts.append(
            (
                np.asarray(windows.start_s, np.float64),
                np.asarray(windows.end_s, np.float64),
                np.asarray(windows.segment),
                np.asarray(probs, np.float32),
            )
        )

    def build(self, **options: Any) -> Timeline:
        """The timeline of everything added (options as :func:`build_timeline`)."""
        if not self._parts:
            k = len(self.classes)
            cols = [np.empty(0), np.empty(0), np.empty(0, np.int64), np.empty((0, k))]
        else:
            cols = [np.concatenate([p[i] for p in self._parts]) for i in range(4)]
        start, end, stretch, probs = cols
        return build_timeline(
            start, end, stretch, probs, self.classes, sample_period_s=self._period, **options
        )
