"""How well a timeline follows the truth: ``python -m har timeline-eval``.

Recordings come with truth segments (``{"segments": [{"activity", "start", "end"}],
"gap": {"start", "end"} | null}``, seconds from the first sample, as the truth files
:func:`har.training.demo_data.make_production_data` writes), or are built here from held-out
subjects of the training data set (:func:`heldout_sessions`). Each is scored in
process by the model (as :mod:`har.core.offline` does) and its timeline is drawn raw
(``smoothing="none"``) and smoothed (the settings' method); :func:`compare` tabulates
the figures of :class:`Score`.

Definitions (all on one recording):

* truth segments are cut to the recorded time: a truth segment that spans a gap
  becomes two (the gap itself is not labelled, and no predicted segment crosses it);
* a predicted segment **matches** a truth segment when both have the same activity
  and their intersection covers at least half the truth segment's duration; matching
  is one-to-one, pairs taken in decreasing order of intersection;
  precision = matched / predicted segments, recall = matched / truth segments,
  segment F1 = their harmonic mean (0 when nothing matches);
* **boundary error**: for every truth boundary (two truth segments touching, not at
  a gap or the recording's ends) the distance in seconds to the nearest predicted
  boundary between two touching predicted segments, averaged (NaN without predicted
  boundaries). Extra predicted boundaries can only lower it: read it with the counts;
* **window accuracy**: a window's truth is the activity at its centre; the share of
  windows whose timeline label (smoothed or raw) equals it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.timeline import Timeline, timeline_of

Truth = list[tuple[float, float, str]]


@dataclass(frozen=True)
class Score:
    """Figures of one timeline against its truth (definitions: module docstring)."""

    windows: int
    truth_segments: int
    segments: int
    precision: float
    recall: float
    f1: float
    boundary_error_s: float
    window_accuracy: float


def read_truth(path: Path) -> Truth:
    """Truth segments ``(start, end, activity)`` of a truth file, cut at its gap."""
    doc = json.loads(Path(path).read_text())
    return cut_at_gap(
        [(float(s["start"]), float(s["end"]), str(s["activity"])) for s in doc["segments"]],
        doc.get("gap"),
    )


def cut_at_gap(truth: Truth, gap: dict | None) -> Truth:
    """Remove the ``gap`` interval (``{"start", "end"}`` s, or None) from the truth segments."""
    if not gap:
        return list(truth)
    g0, g1 = float(gap["start"]), float(gap["end"])
    out = []
    for s, e, a in truth:
        for lo, hi in ((s, min(e, g0)), (max(s, g1), e)):
            if hi > lo:
                out.append((lo, hi, a))
    return out


def truth_at(times: np.ndarray, truth: Truth) -> np.ndarray:
    """Activity name at each of ``times`` (s), ``""`` outside every truth segment."""
    out = np.full(len(times), "", dtype=object)
    for s, e, a in truth:
        out[(times >= s) & (times < e)] = a
    return out


def _touching(starts: np.ndarray, ends: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Times where one segment ends and the next starts (boundaries, not gaps)."""
    keep = np.abs(starts[1:] - ends[:-1]) <= tol
    return np.asarray(ends[:-1][keep])


def score(
    timeline: Timeline, start_s: np.ndarray, end_s: np.ndarray, classes: Sequence[str], truth: Truth
) -> Score:
    """Figures of ``timeline`` (its windows ``start_s``/``end_s``, s) against ``truth``."""
    pred = [(s.start, s.end, s.activity) for s in timeline.segments]
    pairs = []
    for i, (ps, pe, pa) in enumerate(pred):
        for j, (ts, te, ta) in enumerate(truth):
            inter = min(pe, te) - max(ps, ts)
            if pa == ta and inter >= 0.5 * (te - ts) and inter > 0:
                pairs.append((inter, i, j))
    used_p, used_t = set(), set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    m = len(used_p)
    precision = m / len(pred) if pred else 0.0
    recall = m / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if m else 0.0
    tb = _touching(np.array([t[0] for t in truth]), np.array([t[1] for t in truth]))
    pb = _touching(np.array([p[0] for p in pred]), np.array([p[1] for p in pred]))
    if tb.size and pb.size:
        err = float(np.abs(tb[:, None] - pb[None, :]).min(axis=1).mean())
    else:
        err = float("nan")
    centre = (np.asarray(start_s) + np.asarray(end_s)) / 2
    want = truth_at(centre, truth)
    got = np.asarray(classes, dtype=object)[timeline.labels]
    acc = float(np.mean(want == got)) if len(got) else float("nan")
    return Score(len(got), len(truth), len(pred), precision, recall, f1, err, acc)


@dataclass(frozen=True)
class Labelled:
    """A recording to evaluate: its name, samples and truth segments."""

    name: str
    recording: Any  # har.domain.recordings.Recording
    truth: Truth


def production_sessions(folder: Path, *, align_tolerance_s: float) -> list[Labelled]:
    """The demo recordings of ``folder`` (``data/production/``) with their truth files.

    ``align_tolerance_s``: the Garmin pair's accelerometer/gyroscope pairing tolerance
    (seconds; the service's is ``settings.align_tolerance_s``).
    """
    from har.core.offline import read_recording

    tol = align_tolerance_s
    folder = Path(folder)
    canonical = folder / "session_canonical_100hz.csv"
    acc, gyro = folder / "session-accelerometer_data.csv", folder / "session-gyroscope_data.csv"
    return [
        Labelled(
            "canonical CSV (subject 3)",
            read_recording(canonical, align_tolerance_s=tol),
            read_truth(folder / "session_canonical_100hz.truth.json"),
        ),
        Labelled(
            "Garmin pair (subject 8)",
            read_recording(acc, gyro, align_tolerance_s=tol),
            read_truth(folder / "session-garmin.truth.json"),
        ),
    ]


def heldout_sessions(subjects: Sequence[int] | None = None) -> list[Labelled]:
    """One long session per held-out subject: all its recordings joined end to end, 50 Hz.

    Recordings follow in data-set file order (every exercise, both arms); two
    neighbours with the same exercise make one truth segment. Needs ``seglearn``.
    """
    from har.domain.recordings import Recording
    from har.training.data import HELDOUT_SUBJECTS, load_watch_dataset

    ds = load_watch_dataset()
    out = []
    for subject in subjects or HELDOUT_SUBJECTS:
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        truth: list[tuple[float, float, str]] = []
        t0 = 0.0
        for r in ds.of_subjects([subject]):
            rec = r.recording
            period = float(np.median(np.diff(rec.time)))
            times.append(t0 + rec.time - rec.time[0])
            values.append(rec.values)
            end = float(times[-1][-1] + period)
            activity = ds.classes[r.label]
            if truth and truth[-1][2] == activity:
                truth[-1] = (truth[-1][0], end, activity)
            else:
                truth.append((t0, end, activity))
            t0 = end
        rec = Recording(np.concatenate(times), np.concatenate(values))
        out.append(Labelled(f"held-out subject {subject}, all recordings", rec, truth))
    return out


def window_probabilities(
    rec: Any, card: Any, model: Any, *, max_fill: int
) -> tuple[Any, np.ndarray]:
    """``(Windows, (N, K) probabilities)`` of a recording, through the serving path.

    ``max_fill``: the longest gap (missing samples) that is interpolated (the service's is
    ``settings.max_fill_samples``).
    """
    from har.core.offline import in_process_scorer

    scorer = in_process_scorer(card, "eval", model, max_fill=max_fill)
    result = asyncio.run(scorer.predict_recording(rec))
    return result.windows, result.predictions.probs


def compare(
    sessions: Sequence[Labelled], card: Any, model: Any, *, max_fill: int, **smoothed: Any
) -> list[tuple[str, str, Score]]:
    """``(recording, method, Score)`` rows: raw and smoothed timelines of every session.

    ``smoothed`` options pass to :func:`har.domain.timeline.build_timeline` for the smoothed
    row (``options=TimelineOptions.from_settings(settings)`` for the service's; default:
    ``TimelineOptions()``, the settings' defaults).
    """
    rows = []
    for s in sessions:
        w, probs = window_probabilities(s.recording, card, model, max_fill=max_fill)
        for label, options in (("raw", {"smoothing": "none"}), ("smoothed", smoothed)):
            tl = timeline_of(w, probs, card.classes, **options)
            rows.append((s.name, label, score(tl, w.start_s, w.end_s, card.classes, s.truth)))
    return rows


def markdown_table(rows: Sequence[tuple[str, str, Score]]) -> str:
    """The rows of :func:`compare` as a Markdown table."""
    head = (
        "| recording | timeline | windows | truth segments | segments | segment F1 "
        "(P / R) | boundary error (s) | window accuracy |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for name, method, s in rows:
        lines.append(
            f"| {name} | {method} | {s.windows} | {s.truth_segments} | {s.segments} | "
            f"{s.f1:.2f} ({s.precision:.2f} / {s.recall:.2f}) | {s.boundary_error_s:.2f} | "
            f"{100 * s.window_accuracy:.1f} % |"
        )
    for method in dict.fromkeys(m for _, m, _ in rows):
        acc = pooled_accuracy([s for _, m, s in rows if m == method])
        lines.append(f"| all windows pooled | {method} | | | | | | {100 * acc:.1f} % |")
    return "\n".join(lines)


def pooled_accuracy(scores: Sequence[Score]) -> float:
    """Window accuracy over the windows of several recordings together."""
    n = sum(s.windows for s in scores)
    return sum(s.window_accuracy * s.windows for s in scores) / n if n else float("nan")
