"""har.domain.timeline: segments that tile time, and smoothing, on synthetic probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from har.domain.errors import InputError
from har.domain.preprocessing import Windows
from har.domain.smoothing import PROB_FLOOR, viterbi
from har.domain.timeline import (
    TimelineBuilder,
    TimelineOptions,
    build_timeline,
    timeline_of,
)
from har.settings import Settings

CLASSES = ["A", "B", "C"]
WIN_S, HOP_S, DT = 4.0, 2.0, 0.02  # 200 samples at 50 Hz, hop 100


def windows(labels: str, *, stretch_starts: tuple[float, ...] = (0.0,), conf: float = 0.9):
    """Windows 4 s long every 2 s; ``labels`` like ``"AAB|BBC"`` (``|`` = a gap)."""
    starts, stretch, probs = [], [], []
    for g, (part, t0) in enumerate(zip(labels.split("|"), stretch_starts, strict=True)):
        for i, c in enumerate(part):
            starts.append(t0 + i * HOP_S)
            stretch.append(g)
            row = np.full(len(CLASSES), (1 - conf) / (len(CLASSES) - 1))
            row[CLASSES.index(c)] = conf
            probs.append(row)
    start = np.array(starts)
    return start, start + WIN_S, np.array(stretch), np.array(probs, np.float32)


def build(labels: str, **kw):
    stretch_starts = kw.pop("stretch_starts", (0.0,))
    conf = kw.pop("conf", 0.9)
    s, e, g, p = windows(labels, stretch_starts=stretch_starts, conf=conf)
    return build_timeline(s, e, g, p, CLASSES, sample_period_s=DT, **kw), (s, e, g, p)


def assert_tiles(tl, s, e, g):
    """No overlap, time order, each segment inside one stretch's recorded samples."""
    segs = tl.segments
    for a, b in zip(segs[:-1], segs[1:], strict=True):
        assert a.end <= b.start + 1e-9
    for seg in segs:
        assert seg.start < seg.end
        inside = [
            k for k in np.unique(g) if s[g == k][0] <= seg.start and seg.end <= e[g == k][-1] - DT
        ]
        assert len(inside) == 1, f"{seg} is not inside exactly one stretch"
    assert sum(seg.windows for seg in segs) == len(s)


def test_raw_segments_tile_time_with_boundaries_at_overlap_middles():
    tl, (s, e, g, _) = build("AAABBBCC", smoothing="none")
    assert [x.activity for x in tl.segments] == ["A", "B", "C"]
    assert [x.windows for x in tl.segments] == [3, 3, 2]
    # window 2 spans 4-8 s, window 3 spans 6-10 s: the boundary is the middle of 6-8
    assert tl.segments[0].end == pytest.approx(7.0)
    assert tl.segments[1].start == pytest.approx(7.0)
    assert tl.segments[1].end == pytest.approx(13.0)
    # inside the recording: first sample of the first window, last sample of the last
    assert tl.segments[0].start == 0.0
    assert tl.segments[-1].end == pytest.approx(e[-1] - DT)
    assert_tiles(tl, s, e, g)


def test_segments_never_cross_a_gap_and_the_gap_gets_no_time():
    tl, (s, e, g, _) = build("AAAA|AAAB", stretch_starts=(0.0, 30.0), smoothing="none")
    assert [(x.activity, x.windows) for x in tl.segments] == [("A", 4), ("A", 3), ("B", 1)]
    assert tl.segments[0].end == pytest.approx(10.0 - DT)  # last window 6-10 s
    assert tl.segments[1].start == 30.0
    assert_tiles(tl, s, e, g)
    durations = sum(x.end - x.start for x in tl.segments)
    assert sum(tl.summary.values()) == pytest.approx(durations, abs=1e-3)
    # second stretch: windows at 30, 32, 34, 36 s; A until the middle of 36-38 s
    assert tl.summary["A"] == pytest.approx((10.0 - DT) + (37.0 - 30.0), abs=1e-3)
    assert list(tl.summary) == ["A", "B"]  # largest first


def test_smoothing_never_joins_stretches():
    # one stretch of A, one of B: even a huge penalty keeps them apart (decoded per stretch)
    tl, _ = build("AAA|BBB", stretch_starts=(0.0, 20.0), switch_penalty=1e6, min_segment_s=0)
    assert [x.activity for x in tl.segments] == ["A", "B"]


def test_stretch_end_extends_the_last_segment_to_the_last_sample():
    s, e, g, p = windows("AAB")
    tail = np.full(3, 9.5)
    tl = build_timeline(s, e, g, p, CLASSES, stretch_end_s=tail, smoothing="none")
    assert tl.segments[-1].end == 9.5


@pytest.mark.parametrize("conf", [0.6, 0.999])
def test_viterbi_removes_a_single_flipped_window(conf):
    labels = "AAAAABAAAAA"
    raw, _ = build(labels, smoothing="none", conf=conf)
    smooth, (_, e, _, _) = build(labels, smoothing="viterbi", conf=conf, min_segment_s=0)
    assert [x.activity for x in raw.segments] == ["A", "B", "A"]
    assert [(x.activity, x.windows) for x in smooth.segments] == [("A", 11)]
    assert smooth.segments[0].start == 0.0 and smooth.segments[0].end == pytest.approx(e[-1] - DT)
    assert (smooth.labels == 0).all()


def test_none_keeps_the_raw_argmax():
    s, e, g, _ = windows("AAAAAAAA")
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=len(s)).astype(np.float32)
    tl = build_timeline(s, e, g, p, CLASSES, smoothing="none")
    np.testing.assert_array_equal(tl.labels, p.argmax(axis=1))
    assert tl.smoothing == "none"
    runs = 1 + int(np.count_nonzero(np.diff(p.argmax(axis=1))))
    assert len(tl.segments) == runs


def test_a_real_change_is_kept_where_the_evidence_changes():
    tl, _ = build("A" * 10 + "B" * 10, smoothing="viterbi", min_segment_s=0)
    assert [x.activity for x in tl.segments] == ["A", "B"]
    assert tl.segments[0].end == pytest.approx((9 * HOP_S + WIN_S + 10 * HOP_S) / 2)


def test_switch_penalty_zero_is_the_raw_argmax():
    s, e, g, _ = windows("A" * 30)
    p = np.random.default_rng(1).dirichlet(np.ones(3), size=30).astype(np.float32)
    tl = build_timeline(s, e, g, p, CLASSES, smoothing="viterbi", switch_penalty=0.0)
    np.testing.assert_array_equal(tl.labels, p.argmax(axis=1))


def test_viterbi_matches_brute_force_on_small_cases():
    rng = np.random.default_rng(2)
    for _ in range(20):
        n, k, pen = 6, 3, float(rng.uniform(0, 4))
        p = rng.dirichlet(np.ones(k) * 0.5, size=n)
        log_e = np.log(np.clip(p, PROB_FLOOR, None))
        best, best_path = -np.inf, None
        for code in range(k**n):
            path = [(code // k**i) % k for i in range(n)]
            v = sum(log_e[t, c] for t, c in enumerate(path))
            v -= pen * sum(a != b for a, b in zip(path[:-1], path[1:], strict=True))
            if v > best + 1e-12:
                best, best_path = v, path
        got = viterbi(p, np.r_[True, np.zeros(n - 1, bool)], pen)
        got_v = log_e[np.arange(n), got].sum() - pen * np.count_nonzero(np.diff(got))
        assert got_v == pytest.approx(best), (got.tolist(), best_path)


def test_min_segment_merges_into_the_likelier_neighbour():
    s, e, g, p = windows("AAAAAACCBBBBBB", conf=0.999)
    # the C run is confident (survives Viterbi) but short; its windows lean to B over A
    p[6:8] = [0.001, 0.3, 0.699]
    tl = build_timeline(s, e, g, p, CLASSES, smoothing="viterbi", switch_penalty=0.1)
    assert [x.activity for x in tl.segments] == ["A", "C", "B"]
    tl = build_timeline(
        s, e, g, p, CLASSES, smoothing="viterbi", switch_penalty=0.1, min_segment_s=6.0
    )
    assert [(x.activity, x.windows) for x in tl.segments] == [("A", 6), ("B", 8)]
    # a stretch shorter than the minimum keeps its one segment
    tl, _ = build("AA", smoothing="viterbi", min_segment_s=60.0)
    assert [x.activity for x in tl.segments] == ["A"]


def test_confidence_is_the_mean_probability_of_the_segment_activity():
    s, e, g, p = windows("AAAA")
    p[:, :] = [[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.8, 0.1, 0.1]]
    tl = build_timeline(s, e, g, p, CLASSES, sample_period_s=DT, min_segment_s=0)
    assert [x.activity for x in tl.segments] == ["A"]
    assert tl.segments[0].confidence == pytest.approx(np.mean([0.5, 0.9, 0.2, 0.8]))
    assert tl.as_dicts()[0] == {
        "start": 0.0,
        "end": 9.98,
        "activity": "A",
        "confidence": pytest.approx(0.6),
        "windows": 4,
    }


def test_options_come_from_the_caller_and_their_defaults_are_the_settings():
    labels = "AAAAABAAAAA"
    raw = TimelineOptions.from_settings(Settings(smoothing="none"))
    tl, _ = build(labels, options=raw)
    assert tl.smoothing == "none" and len(tl.segments) == 3
    tl, _ = build(labels, options=raw, smoothing="viterbi")  # a keyword overrides options
    assert tl.smoothing == "viterbi" and len(tl.segments) == 1
    tl, _ = build(labels)  # no options: the defaults, the same as HAR_* unset
    assert tl.smoothing == "viterbi" and len(tl.segments) == 1
    fields = Settings.model_fields
    assert TimelineOptions() == TimelineOptions(
        fields["smoothing"].default,
        fields["switch_penalty"].default,
        fields["min_segment_s"].default,
    )
    assert raw.override() is raw and raw.override(min_segment_s=4).min_segment_s == 4.0


def test_bad_input_is_refused():
    s, e, g, p = windows("AAB")
    with pytest.raises(
        InputError, match="unknown smoothing 'median'; use one of 'viterbi', 'none'"
    ):
        build_timeline(s, e, g, p, CLASSES, smoothing="median")
    with pytest.raises(ValueError, match=">= 0"):
        TimelineOptions(switch_penalty=-1.0)
    with pytest.raises(ValueError, match="columns"):
        build_timeline(s, e, g, p[:, :2], CLASSES)
    with pytest.raises(ValueError, match="time order"):
        build_timeline(s[::-1], e[::-1], g, p, CLASSES)
    empty = build_timeline(np.empty(0), np.empty(0), np.empty(0), np.empty((0, 3)), CLASSES)
    assert empty.segments == () and empty.summary == {}


def test_windows_object_and_stream_builder_agree():
    s, _, g, p = windows("AAAABBBB|BBCC", stretch_starts=(0.0, 40.0))
    vals = np.zeros((len(s), 200, 6), np.float32)
    w = Windows(vals, s, g, 50.0)
    whole = timeline_of(w, p, CLASSES)
    builder = TimelineBuilder(CLASSES)
    for lo, hi in [(0, 3), (3, 3), (3, 9), (9, 12)]:  # chunks as a stream delivers them
        builder.add(Windows(vals[lo:hi], s[lo:hi], g[lo:hi], 50.0), p[lo:hi])
    assert len(builder) == len(s)
    assert builder.build().segments == whole.segments
    assert whole.segments[-1].end == pytest.approx(s[-1] + WIN_S - 1 / 50.0)
    assert TimelineBuilder(CLASSES).build().segments == ()


def test_an_hour_with_eleven_classes():
    n, k = 1800, 11  # 1 h at a 2 s hop
    rng = np.random.default_rng(3)
    truth = np.repeat(rng.integers(0, k, size=60), 30)
    p = rng.dirichlet(np.ones(k), size=n)
    p[np.arange(n), truth] += 0.25  # right most of the time, not always
    p /= p.sum(axis=1, keepdims=True)
    start = np.arange(n) * HOP_S
    names = [f"c{i}" for i in range(k)]
    tl = build_timeline(start, start + WIN_S, np.zeros(n, int), p, names, sample_period_s=DT)
    raw = build_timeline(
        start, start + WIN_S, np.zeros(n, int), p, names, sample_period_s=DT, smoothing="none"
    )
    assert len(tl.segments) < len(raw.segments)
    assert np.mean(tl.labels == truth) >= np.mean(raw.labels == truth)
    assert_tiles(tl, start, start + WIN_S, np.zeros(n, int))
