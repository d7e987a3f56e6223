"""har.training.timeline_eval: the figures a timeline is judged by, on hand-made timelines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from har.domain.timeline import Timeline, TimelineSegment
from har.training.timeline_eval import (
    Score,
    cut_at_gap,
    markdown_table,
    pooled_accuracy,
    read_truth,
    score,
    truth_at,
)

CLASSES = ["A", "B"]


def tl(*segs: tuple[float, float, str], labels: list[int] | None = None) -> Timeline:
    out = tuple(TimelineSegment(s, e, a, CLASSES.index(a), 1.0, 1) for s, e, a in segs)
    return Timeline(out, np.array(labels or [], np.int64), "none")


def test_truth_is_cut_at_the_gap(tmp_path):
    doc = {
        "segments": [
            {"activity": "A", "start": 0.0, "end": 10.0},
            {"activity": "B", "start": 10.0, "end": 30.0},
        ],
        "gap": {"start": 15.0, "end": 20.0},
    }
    (tmp_path / "t.json").write_text(json.dumps(doc))
    assert read_truth(tmp_path / "t.json") == [(0, 10, "A"), (10, 15, "B"), (20, 30, "B")]
    assert cut_at_gap([(0, 5, "A")], None) == [(0, 5, "A")]
    assert cut_at_gap([(0, 5, "A")], {"start": 0, "end": 5}) == []


def test_match_needs_same_activity_and_half_the_truth():
    truth = [(0.0, 10.0, "A"), (10.0, 20.0, "B")]
    # each A covers 5 s of the 10 s A truth (exactly half: one of them matches);
    # B covers 4 s of the 10 s B truth (no match)
    s = score(
        tl((0, 5, "A"), (5, 16, "A"), (16, 20, "B")), np.array([]), np.array([]), CLASSES, truth
    )
    assert s.segments == 3 and s.truth_segments == 2
    assert (s.precision, s.recall) == (pytest.approx(1 / 3), 0.5)
    assert s.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    # wrong activity never matches, whatever the overlap
    s = score(tl((0, 20, "B")), np.array([]), np.array([]), CLASSES, truth)
    assert (s.precision, s.recall) == (1.0, 0.5)


def test_matching_is_one_to_one():
    truth = [(0.0, 10.0, "A")]
    # two predicted segments each cover half: only one of them may count
    s = score(tl((0, 5, "A"), (5, 10, "A")), np.array([]), np.array([]), CLASSES, truth)
    assert (s.precision, s.recall) == (0.5, 1.0)


def test_boundary_error_is_the_mean_distance_to_the_nearest_predicted_boundary():
    truth = [(0.0, 10.0, "A"), (10.0, 20.0, "B"), (20.0, 30.0, "A"), (40.0, 50.0, "B")]
    pred = tl((0, 11, "A"), (11, 18, "B"), (18, 30, "A"), (40, 50, "B"))
    s = score(pred, np.array([]), np.array([]), CLASSES, truth)
    # truth boundaries 10 and 20 (30/40 is a gap, not a boundary); predicted 11 and 18
    assert s.boundary_error_s == pytest.approx((1 + 2) / 2)
    s = score(tl((0, 30, "A")), np.array([]), np.array([]), CLASSES, truth)
    assert math.isnan(s.boundary_error_s)


def test_window_accuracy_uses_the_truth_at_the_window_centre():
    truth = [(0.0, 5.0, "A"), (5.0, 10.0, "B")]
    start = np.array([0.0, 2.0, 4.0, 6.0])
    end = start + 4.0  # centres 2, 4, 6, 8 s -> A A B B
    np.testing.assert_array_equal(truth_at(start + 2, truth), ["A", "A", "B", "B"])
    s = score(tl((0, 10, "A"), labels=[0, 0, 0, 1]), start, end, CLASSES, truth)
    assert s.window_accuracy == 0.75 and s.windows == 4


def test_table_and_pooled_accuracy():
    a = Score(10, 2, 3, 1.0, 1.0, 1.0, 0.5, 0.9)
    b = Score(30, 2, 2, 1.0, 1.0, 1.0, 0.5, 0.5)
    assert pooled_accuracy([a, b]) == pytest.approx((9 + 15) / 40)
    text = markdown_table([("r1", "raw", a), ("r2", "raw", b)])
    assert "| r1 | raw | 10 | 2 | 3 | 1.00 (1.00 / 1.00) | 0.50 | 90.0 % |" in text
    assert text.splitlines()[-1].endswith("| 60.0 % |")
