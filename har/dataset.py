"""The public wrist-IMU data set the reference model is trained on, and the demo data made from it.

The data set ships inside the ``seglearn`` package (BSD-3) as
``seglearn/data/watch_dataset.npy``: 140 recordings of 10 subjects doing 7
shoulder-physiotherapy exercises with each arm, from a smartwatch's 6-axis IMU at
50 Hz, accelerometer in g and gyroscope in rad/s (Burns et al., 2018). The file is
found through the installed distribution's metadata; ``import seglearn`` is
avoided on purpose because the package's own imports target old scikit-learn.

Every recording is converted to canonical units (m/s², deg/s) once, here, and
becomes a :class:`har.recordings.Recording`; windows are cut later by the shared
:class:`har.preprocessing.Preprocessor`, never here.

Commands:
    ``python -m har data`` → :func:`materialise_raw` (``data/raw/``, git-ignored)
    ``python -m har train-reference`` → also calls :func:`make_production_data`
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from har.card import Units
from har.errors import InputError, RecordingError
from har.preprocessing import Preprocessor, unit_factors
from har.recordings import Recording, write_garmin_pair

DATASET_DISTRIBUTION = "seglearn"
DATASET_FILE = "seglearn/data/watch_dataset.npy"
#: Units of the file: accelerometer in g, gyroscope in rad/s.
DATASET_UNITS = Units(acc="g", gyro="rad/s")
DATASET_RATE_HZ = 50.0
DATASET_NAME = "seglearn watch_dataset (Burns et al. 2018, shoulder physiotherapy, 50 Hz)"
#: The two subjects the bundled model never sees (training, scaler, early stopping);
#: the held-out fixture and the production demo data come from them.
HELDOUT_SUBJECTS: tuple[int, int] = (3, 8)

#: Demo session: exercises of the first held-out subject, in this order.
SESSION_EXERCISES: tuple[str, ...] = ("ABD", "ROW", "PEN", "ER", "FEL")
#: Index (into ``SESSION_EXERCISES``) of the exercise that loses ``SESSION_GAP_S`` of samples.
SESSION_GAP_IN = 2
SESSION_GAP_S = 10.0
#: Garmin-format demo: exercises of the second held-out subject.
GARMIN_EXERCISES: tuple[str, ...] = ("IR", "TRAP", "ABD")
PRODUCTION_RATE_HZ = 100.0


@dataclass(frozen=True)
class LabelledRecording:
    """One recording of the data set with its label.

    Attributes:
        recording: samples in canonical units (m/s², deg/s), ``time = arange(n) / 50``.
        label: class index into :attr:`WatchDataset.classes`.
        subject: subject number, 1..10.
        side: the arm, 0 or 1, as coded in the data set.
        index: position of the recording in the data set file.
    """

    recording: Recording
    label: int
    subject: int
    side: int
    index: int


@dataclass(frozen=True)
class WatchDataset:
    """All recordings of the data set, in canonical units.

    Attributes:
        recordings: 140 labelled recordings in file order.
        classes: exercise names; ``classes[label]`` names a recording's label.
        sample_rate_hz: 50.
    """

    recordings: tuple[LabelledRecording, ...]
    classes: tuple[str, ...]
    sample_rate_hz: float = DATASET_RATE_HZ

    @property
    def subjects(self) -> list[int]:
        """The distinct subject numbers, sorted."""
        return sorted({r.subject for r in self.recordings})

    def of_subjects(self, subjects: Sequence[int]) -> list[LabelledRecording]:
        """Recordings of the given subjects, in file order."""
        keep = set(int(s) for s in subjects)
        return [r for r in self.recordings if r.subject in keep]


def dataset_path() -> Path:
    """Path of ``watch_dataset.npy`` inside the installed ``seglearn`` distribution.

    Raises:
        InputError: seglearn is not installed or its data file is missing.
    """
    try:
        dist = importlib.metadata.distribution(DATASET_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise InputError(
            "the training data ships with the 'seglearn' package, which is not installed; "
            "install the development extras: pip install -e '.[dev]'"
        ) from None
    path = Path(str(dist.locate_file(DATASET_FILE)))
    if not path.is_file():
        raise InputError(f"seglearn is installed but {DATASET_FILE} is missing (looked at {path})")
    return path


@lru_cache(maxsize=1)
def load_watch_dataset() -> WatchDataset:
    """Load the data set and convert it to canonical units (m/s², deg/s).

    Returns:
        A :class:`WatchDataset` of 140 recordings, each ``(n, 6)`` at 50 Hz
        (``n`` between 947 and 2618 samples).
    """
    raw = np.load(dataset_path(), allow_pickle=True).item()
    factors = unit_factors(DATASET_UNITS)
    recs = []
    for i, (x, y, subj, side) in enumerate(
        zip(raw["X"], raw["y"], raw["subject"], raw["side"], strict=True)
    ):
        values = np.asarray(x, np.float64) * factors
        time = np.arange(values.shape[0], dtype=np.float64) / DATASET_RATE_HZ
        recs.append(LabelledRecording(Recording(time, values), int(y), int(subj), int(side), i))
    return WatchDataset(tuple(recs), tuple(str(c) for c in raw["y_labels"]))


def recording_filename(r: LabelledRecording, classes: Sequence[str]) -> str:
    """File name of a recording in ``data/raw``, e.g. ``s03_side1_ABD_017.csv``."""
    return f"s{r.subject:02d}_side{r.side}_{classes[r.label]}_{r.index:03d}.csv"


def materialise_raw(out_dir: Path) -> Path:
    """Write every recording as a canonical CSV plus an index (``python -m har data``).

    Args:
        out_dir: target folder (``data/raw`` by convention; git-ignored). Created if needed.

    Returns:
        Path of the index CSV (``index.csv``: columns ``file, subject, side, label``).
    """
    ds = load_watch_dataset()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in ds.recordings:
        name = recording_filename(r, ds.classes)
        r.recording.to_csv(out_dir / name)
        rows.append(
            {"file": name, "subject": r.subject, "side": r.side, "label": ds.classes[r.label]}
        )
    index = out_dir / "index.csv"
    pd.DataFrame(rows).to_csv(index, index=False)
    return index


@dataclass(frozen=True)
class WindowSet:
    """Windows of many recordings, as the model sees them before scaling.

    Attributes:
        values: ``(N, window, 6)`` float32, canonical units, unscaled.
        labels: ``(N,)`` int class index.
        subjects: ``(N,)`` subject of each window.
        recording: ``(N,)`` data-set index of the recording each window came from.
        start_s: ``(N,)`` window start, seconds from the recording's first sample.
    """

    values: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    recording: np.ndarray
    start_s: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def select(self, mask: np.ndarray) -> WindowSet:
        """The windows where ``mask`` (boolean or index array) selects."""
        return WindowSet(
            self.values[mask],
            self.labels[mask],
            self.subjects[mask],
            self.recording[mask],
            self.start_s[mask],
        )


def windows_of(recordings: Sequence[LabelledRecording], pre: Preprocessor) -> WindowSet:
    """Cut every recording into windows through the shared preprocessing path.

    Args:
        recordings: labelled recordings in canonical units.
        pre: the card-driven :class:`Preprocessor` (window, hop and rate from the card).
            Recordings shorter than one window contribute nothing.
    """
    vals, labels, subj, rec, start = [], [], [], [], []
    for r in recordings:
        try:
            w = pre.windows(r.recording.time, r.recording.values)
        except RecordingError:
            continue
        n = len(w)
        vals.append(w.values)
        labels.append(np.full(n, r.label, np.int64))
        subj.append(np.full(n, r.subject, np.int64))
        rec.append(np.full(n, r.index, np.int64))
        start.append(w.start_s)
    if not vals:
        raise InputError("no recordings to cut into windows")
    return WindowSet(
        np.concatenate(vals),
        np.concatenate(labels),
        np.concatenate(subj),
        np.concatenate(rec),
        np.concatenate(start).astype(np.float64),
    )


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
        "made_by": "har.dataset.make_production_data",
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
        "made_by": "har.dataset.make_production_data",
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
