"""Typed results: Predictions from probabilities (timelines: tests/unit/domain/test_timeline.py)."""

from __future__ import annotations

import numpy as np

from har.domain.results import Predictions


def test_predictions_pick_the_most_probable_class() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float64)
    p = Predictions.from_probs(probs, ["a", "b", "c"])
    assert p.probs.dtype == np.float32 and len(p) == 2
    assert p.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(p.confidence, [0.7, 0.5], rtol=1e-6)
    assert p.classes == ("a", "b", "c")
    empty = Predictions.from_probs(np.empty((0, 3)), ["a", "b", "c"])
    assert len(empty) == 0 and empty.class_ids.tolist() == []
