"""Typed results: Predictions from probabilities, the timeline of a recording's windows."""

from __future__ import annotations

import numpy as np
import pytest

from har.results import ActivitySegment, Predictions, build_timeline


def test_predictions_pick_the_most_probable_class() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float64)
    p = Predictions.from_probs(probs, ["a", "b", "c"])
    assert p.probs.dtype == np.float32 and len(p) == 2
    assert p.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(p.confidence, [0.7, 0.5], rtol=1e-6)
    assert p.activities == ["b", "a"] and p.classes == ("a", "b", "c")
    empty = Predictions.from_probs(np.empty((0, 3)), ["a", "b", "c"])
    assert len(empty) == 0 and empty.activities == []


def _probs(ids: list[int], conf: list[float]) -> np.ndarray:
    p = np.zeros((len(ids), 2))
    for row, (i, c) in enumerate(zip(ids, conf, strict=True)):
        p[row, i], p[row, 1 - i] = c, 1 - c
    return p


def test_timeline_merges_same_activity_windows_and_splits_at_gaps() -> None:
    # windows of 4 s every 2 s; a gap between the 4th and 5th window
    start = np.array([0.0, 2.0, 4.0, 6.0, 20.0, 22.0])
    gap_ids = np.array([0, 0, 0, 0, 1, 1])
    probs = _probs([0, 1, 1, 1, 1, 0], [0.9, 0.6, 0.8, 0.7, 0.9, 0.8])
    t = build_timeline(start, start + 4, gap_ids, probs, ["a", "b"], hop_s=2.0, window_s=4.0)
    assert t.segments == [
        ActivitySegment(0.0, 4.0, "a", pytest.approx(0.9), 1),
        ActivitySegment(2.0, 10.0, "b", pytest.approx(0.7), 3),  # 0.6, 0.8, 0.7
        ActivitySegment(20.0, 24.0, "b", pytest.approx(0.9), 1),  # same activity, after a gap
        ActivitySegment(22.0, 26.0, "a", pytest.approx(0.8), 1),
    ]
    # hop credited per window, the full window at the end of each gap-free stretch
    assert t.summary == {"b": pytest.approx(10.0), "a": pytest.approx(6.0)}
    assert list(t.summary) == ["b", "a"]  # most seconds first
