"""har.training.evaluate: leave-subjects-out folds."""

from __future__ import annotations

from har.training import data as dataset
from har.training import evaluate


def test_folds_cover_every_subject_once_and_hold_out_the_fixture_subjects():
    folds = evaluate.subject_folds(range(1, 11))
    assert len(folds) == 5
    assert all(len(f) == 2 for f in folds)
    flat = [s for f in folds for s in f]
    assert sorted(flat) == list(range(1, 11))
    assert tuple(sorted(dataset.HELDOUT_SUBJECTS)) in folds
