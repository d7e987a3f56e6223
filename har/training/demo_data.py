"""The unlabelled demo data under ``data/production/``, made from the held-out subjects.

``python -m har train-reference`` regenerates it (:func:`make_production_data`) when
it trains the bundled model; the files are deterministic, so a rerun writes the
same bytes (``tests/test_dataset.py`` checks the committed copy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from har.domain.errors import InputError
from har.domain.recordings import Recording, write_garmin_pair
from har.training.data import (
    DATASET_RATE_HZ,
    HELDOUT_SUBJECTS,
    LabelledRecording,
    WatchDataset,
    load_watch_dataset,
)

#: Demo session: exercises of the first held-out subject, in this order.
SESSION_EXERCISES: tuple[str, ...] = ("ABD", "ROW", "PEN", "ER", "FEL")
#: Index (into ``SESSION_EXERCISES``) of the exercise that loses ``SESSION_GAP_S`` of samples.
SESSION_GAP_IN = 2
SESSION_GAP_S = 10.0
#: Garmin-format demo: exercises of the second held-out subject.
GARMIN_EXERCISES: tuple[str, ...] = ("IR", "TRAP", "ABD")
PRODUCTION_RATE_HZ = 100.0


def upsample(rec: Recording, factor: int) -> Recording:
    """Upsample a uniformly sampled recording by an integer ``factor``.

    Band-limited interpolation (polyphase FIR, ``scipy.signal.resample_poly``) keeps
    the original samples' spectrum, so resampling back down reproduces the data
    closely. Output: ``factor * n`` samples at ``factor`` times the rate.
    """
    rate = 1.0 / float(np.median(np.diff(rec.time)))
    values = resample_poly(rec.values, factor, 1, axis=0, padtype="line")
    time = rec.time[0] + np.arange(values.shape[0], dtype=np.float64) / (rate * factor)
    return Recording(time, values, rec.start)


def _pick(ds: WatchDataset, subject: int, exercises: Sequence[str]) -> list[LabelledRecording]:
    """One recording per exercise of ``subject`` (the lower side code when both exist)."""
    out = []
    for name in exercises:
        label = ds.classes.index(name)
        found = sorted(
            (r for r in ds.recordings if r.subject == subject and r.label == label),
            key=lambda r: (r.side, r.index),
        )
        if not found:
            raise InputError(f"subject {subject} has no {name} recording")
        out.append(found[0])
    return out


def _concatenate(
    parts: Sequence[LabelledRecording],
    classes: Sequence[str],
    rate_hz: float,
    gap_in: int | None = None,
    gap_s: float = 0.0,
) -> tuple[Recording, list[dict], dict | None]:
    """Upsample recordings to ``rate_hz`` and join them end to end in time.

    When ``gap_in`` is given, ``gap_s`` seconds of samples are removed from the middle
    of that part (time keeps running: the timeline shows a hole).

    Returns:
        ``(recording, segments, gap)``: segments list each exercise's ``activity``,
        ``start`` and ``end`` (seconds from the first sample, end = last sample + 1/rate);
        ``gap`` gives the missing interval or ``None``.
    """
    times, values, segments = [], [], []
    gap = None
    t0 = 0.0
    period = 1.0 / rate_hz
    for i, part in enumerate(parts):
        factor = int(round(rate_hz / DATASET_RATE_HZ))
        up = upsample(part.recording, factor)
        t = t0 + up.time - up.time[0]
        v = up.values
        if i == gap_in:
            n = len(t)
            drop = int(round(gap_s * rate_hz))
            a = (n - drop) // 2
            keep = np.r_[0:a, a + drop : n]
            gap = {"start": round(float(t[a]), 6), "end": round(float(t[a + drop]), 6)}
            t, v = t[keep], v[keep]
        times.append(t)
        values.append(v)
        end = float(t[-1] + period)
        segments.append(
            {
                "activity": classes[part.label],
                "start": round(t0, 6),
                "end": round(end, 6),
                "source_recording": part.index,
                "side": part.side,
            }
        )
        t0 = end
    rec = Recording(np.concatenate(times), np.concatenate(values))
    return rec, segments, gap


def make_production_data(
    out_dir: Path,
    subjects: Sequence[int] = HELDOUT_SUBJECTS,
    *,
    window: int = 200,
    hop: int = 100,
) -> list[Path]:
    """Write the unlabelled demo data made from the held-out subjects (deterministic).

    Files (CSV values rounded to 4 decimals):

    * ``session_canonical_100hz.csv``: canonical CSV at 100 Hz (upsampled from 50 Hz)
      where the exercises ``SESSION_EXERCISES`` of ``subjects[0]`` follow each other,
      with ``SESSION_GAP_S`` seconds missing in the middle of one of them;
    * ``session_canonical_100hz.truth.json``: the true exercise order with start/end
      seconds, and the gap;
    * ``session-accelerometer_data.csv`` + ``session-gyroscope_data.csv``: a Garmin
      export pair (milli-g, deg/s, 100 Hz) of the exercises ``GARMIN_EXERCISES`` of
      ``subjects[1]``, with its own truth file ``session-garmin.truth.json``;
    * ``window.json``: ``{"windows": [window x 6]}``, one 50 Hz window of ``subjects[0]``
      (``window`` samples, starting on the ``hop`` grid) in canonical units, for API
      examples and smoke tests; its label is in the session truth file.

    Returns:
        The paths written.
    """
    ds = load_watch_dataset()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    parts = _pick(ds, subjects[0], SESSION_EXERCISES)
    rec, segments, gap = _concatenate(
        parts, ds.classes, PRODUCTION_RATE_HZ, SESSION_GAP_IN, SESSION_GAP_S
    )
    csv_path = out_dir / "session_canonical_100hz.csv"
    rec.to_csv(csv_path, decimals=4)
    truth = {
        "file": csv_path.name,
        "subject": subjects[0],
        "sample_rate_hz": PRODUCTION_RATE_HZ,
        "units": {"acc": "m/s2", "gyro": "deg/s"},
        "made_by": "har.training.demo_data.make_production_data",
        "note": "50 Hz recordings upsampled x2 by band-limited interpolation and joined end to "
        "end; times in seconds from the first sample; 'gap' is missing, not labelled.",
        "segments": segments,
        "gap": gap,
    }
    truth_path = out_dir / "session_canonical_100hz.truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    written += [csv_path, truth_path]

    g_parts = _pick(ds, subjects[1], GARMIN_EXERCISES)
    g_rec, g_segments, _ = _concatenate(g_parts, ds.classes, PRODUCTION_RATE_HZ)
    g_rec = Recording(g_rec.time, g_rec.values, pd.Timestamp("2025-03-24 07:52:19"))
    acc_path = out_dir / "session-accelerometer_data.csv"
    gyro_path = out_dir / "session-gyroscope_data.csv"
    write_garmin_pair(g_rec, acc_path, gyro_path)
    g_truth = {
        "files": [acc_path.name, gyro_path.name],
        "subject": subjects[1],
        "sample_rate_hz": PRODUCTION_RATE_HZ,
        "units": {"acc": "milli_g", "gyro": "deg/s"},
        "made_by": "har.training.demo_data.make_production_data",
        "segments": g_segments,
        "gap": None,
    }
    g_truth_path = out_dir / "session-garmin.truth.json"
    g_truth_path.write_text(json.dumps(g_truth, indent=2) + "\n")
    written += [acc_path, gyro_path, g_truth_path]

    # One window straight from the 50 Hz data (the model's rate): the middle of the
    # first exercise, on the hop grid the model's windows use.
    first = parts[0].recording
    start = max(0, (len(first) // 2 - window // 2) // hop * hop)
    win = np.round(first.values[start : start + window], 4)
    win_path = out_dir / "window.json"
    win_path.write_text(json.dumps({"windows": [win.tolist()]}) + "\n")
    truth["window_example"] = {
        "file": win_path.name,
        "activity": ds.classes[parts[0].label],
        "source_recording": parts[0].index,
        "start_s": start / DATASET_RATE_HZ,
    }
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    written.append(win_path)
    return written
