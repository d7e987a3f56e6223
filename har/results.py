"""Typed results of :class:`har.scorer.Scorer`, independent of any transport.

Arrays and small dataclasses: the HTTP JSON (:mod:`har.formats`) and the gRPC
messages (:mod:`har.grpc_service`) are each built from these in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from har.preprocessing import Windows


@dataclass(frozen=True)
class Predictions:
    """The model's answer for ``N`` windows.

    Attributes:
        probs: ``(N, n_classes)`` float32 softmax probabilities, card class order.
        class_ids: ``(N,)`` int64 index of the most probable class.
        confidence: ``(N,)`` float32 probability of that class.
        classes: the card's class names (``classes[i]`` names column ``i``).
    """

    probs: np.ndarray
    class_ids: np.ndarray
    confidence: np.ndarray
    classes: tuple[str, ...]

    @classmethod
    def from_probs(cls, probs: np.ndarray, classes: Sequence[str]) -> Predictions:
        """Predictions of ``(N, n_classes)`` probabilities."""
        probs = np.asarray(probs, np.float32)
        ids = probs.argmax(axis=1)
        return cls(probs, ids, probs[np.arange(len(ids)), ids], tuple(classes))

    def __len__(self) -> int:
        return int(self.probs.shape[0])

    @property
    def activities(self) -> list[str]:
        """Name of the predicted class of each window."""
        return [self.classes[i] for i in self.class_ids.tolist()]


@dataclass(frozen=True)
class ActivitySegment:
    """Consecutive windows with one activity and no gap between them.

    Attributes:
        start: start of its first window, seconds from the recording's first sample.
        end: end of its last window (seconds).
        activity: the class name.
        confidence: mean confidence of its windows.
        windows: number of windows.
    """

    start: float
    end: float
    activity: str
    confidence: float
    windows: int


@dataclass(frozen=True)
class Timeline:
    """Segments in time order and seconds per activity (largest first)."""

    segments: list[ActivitySegment]
    summary: dict[str, float]


@dataclass(frozen=True)
class RecordingResult:
    """A scored recording.

    Attributes:
        windows: its windows (``start_s``/``end_s`` in seconds from the first sample,
            ``segment`` the gap-free stretch each came from, canonical ``values``).
        predictions: one per window.
        timeline: the windows merged into activity segments.
    """

    windows: Windows
    predictions: Predictions
    timeline: Timeline


@dataclass(frozen=True)
class StreamResult:
    """Windows of a stream completed by one chunk (or the stream's end), scored.

    Attributes:
        first_index: running number of the first window in the stream (from 0).
        windows: the windows; ``start_s``/``end_s`` in seconds from the stream's first sample.
        predictions: one per window.
    """

    first_index: int
    windows: Windows
    predictions: Predictions

    def __len__(self) -> int:
        return len(self.windows)


def build_timeline(
    start_s: np.ndarray,
    end_s: np.ndarray,
    gap_ids: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    hop_s: float,
    window_s: float,
) -> Timeline:
    """Merge per-window predictions into segments and seconds per activity.

    Consecutive windows with the same activity and no gap between them (same
    ``gap_ids``) form one segment (``start`` of its first window, ``end`` of its last,
    mean confidence). In ``summary`` each window is credited with the ``hop_s``
    seconds it adds to the timeline (``window_s`` when it ends a gap-free stretch),
    so overlapping windows are not counted twice.

    Args:
        start_s, end_s: ``(N,)`` window start and end, seconds (``N >= 1``).
        gap_ids: ``(N,)`` index of the gap-free stretch of each window.
        probs: ``(N, n_classes)`` probabilities.
        classes: class names of the columns of ``probs``.
    """
    ids = probs.argmax(axis=1)
    conf = probs[np.arange(len(ids)), ids].astype(np.float64)
    # a new segment starts where the activity changes or a gap separates windows
    contiguous = np.concatenate([[False], gap_ids[1:] == gap_ids[:-1]])
    new = ~(contiguous & np.concatenate([[False], ids[1:] == ids[:-1]]))
    seg_id = np.cumsum(new) - 1
    segments = []
    for k in range(int(seg_id[-1]) + 1 if len(ids) else 0):
        idx = np.flatnonzero(seg_id == k)
        segments.append(
            ActivitySegment(
                start=float(start_s[idx[0]]),
                end=float(end_s[idx[-1]]),
                activity=classes[int(ids[idx[0]])],
                confidence=float(conf[idx].mean()),
                windows=len(idx),
            )
        )
    last_of_stretch = np.concatenate([~contiguous[1:], [True]])
    credit = np.where(last_of_stretch, window_s, hop_s)
    summary: dict[str, float] = {}
    for i, sec in zip(ids.tolist(), credit.tolist(), strict=True):
        summary[classes[i]] = summary.get(classes[i], 0.0) + sec
    return Timeline(segments, dict(sorted(summary.items(), key=lambda kv: -kv[1])))
