"""Smoothing must keep helping on the committed demo recordings (data/production/).

The bundled model scores both recordings through the serving path; the timeline
with the settings' smoothing must have a higher segment F1 than the raw one on each
recording, and window accuracy over both recordings' windows together may drop by at
most one point (figures and the reason for that pooling: models/README.md, "Activity
timeline").
"""

from __future__ import annotations

import numpy as np
import pytest

from har.domain.card import ModelCard
from har.domain.timeline import timeline_of
from har.runtime import model_store
from har.settings import get_settings
from har.training.timeline_eval import (
    pooled_accuracy,
    production_sessions,
    score,
    window_probabilities,
)
from tests.helpers.paths import PRODUCTION


@pytest.fixture(scope="module")
def scored():
    card = ModelCard.from_file(model_store.BUNDLED_CARD)
    model = model_store.load_keras(model_store.BUNDLED_MODEL)
    out = []
    settings = get_settings()
    sessions = production_sessions(PRODUCTION, align_tolerance_s=settings.align_tolerance_s)
    for s in sessions:
        w, probs = window_probabilities(
            s.recording, card, model, max_fill=settings.max_fill_samples
        )
        out.append((s, w, probs, card.classes))
    return out


def scores(scored, **options):
    return [
        score(timeline_of(w, p, classes, **options), w.start_s, w.end_s, classes, s.truth)
        for s, w, p, classes in scored
    ]


def test_smoothing_is_on_by_default():
    assert get_settings().smoothing == "viterbi"


def test_smoothed_segment_f1_beats_raw_on_each_recording(scored):
    raw = scores(scored, smoothing="none")
    smooth = scores(scored)
    for (s, *_), r, m in zip(scored, raw, smooth, strict=True):
        assert m.f1 > r.f1, f"{s.name}: smoothed F1 {m.f1:.2f} <= raw {r.f1:.2f}"
        assert m.segments <= r.segments
        assert abs(m.segments - m.truth_segments) <= abs(r.segments - r.truth_segments)


def test_window_accuracy_drops_at_most_one_point(scored):
    raw = pooled_accuracy(scores(scored, smoothing="none"))
    smooth = pooled_accuracy(scores(scored))
    assert smooth >= raw - 0.01, f"smoothed {smooth:.3f} vs raw {raw:.3f}"


def test_real_timelines_tile_time_inside_the_recording(scored):
    for s, w, p, classes in scored:
        tl = timeline_of(w, p, classes)
        segs = tl.segments
        assert all(a.end <= b.start for a, b in zip(segs[:-1], segs[1:], strict=False))
        assert segs[0].start >= 0 and segs[-1].end <= float(s.recording.time[-1])
        assert sum(x.windows for x in segs) == len(w)
        bounds = np.cumsum([0] + [x.windows for x in segs])
        for x, lo, hi in zip(segs, bounds[:-1], bounds[1:], strict=True):
            # never across a gap: a segment's windows (in order) share one stretch
            assert len(set(w.segment[lo:hi].tolist())) == 1
            assert w.start_s[lo] <= x.start + 1e-9 and x.end <= w.end_s[hi - 1]
