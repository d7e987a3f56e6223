"""The public wrist-IMU data set the reference model is trained on, and its windows.

The data set ships inside the ``seglearn`` package (BSD-3) as
``seglearn/data/watch_dataset.npy``: 140 recordings of 10 subjects doing 7
shoulder-physiotherapy exercises with each arm, from a smartwatch's 6-axis IMU at
50 Hz, accelerometer in g and gyroscope in rad/s (Burns et al., 2018). The file is
found through the installed distribution's metadata; ``import seglearn`` is
avoided on purpose because the package's own imports target old scikit-learn.

Every recording is converted to canonical units (m/s², deg/s) once, here, and
becomes a :class:`har.domain.recordings.Recording`; windows are cut later by the shared
:class:`har.domain.preprocessing.Preprocessor`, never here.

Commands:
    ``python -m har data`` → :func:`materialise_raw` (``data/raw/``, git-ignored)
    ``python -m har train-reference`` → :func:`load_watch_dataset`, :func:`windows_of`
    (the demo data made from the held-out subjects: :mod:`har.training.demo_data`)
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from har.domain.card import Units
from har.domain.errors import InputError, RecordingError
from har.domain.preprocessing import Preprocessor, unit_factors
from har.domain.recordings import Recording

DATASET_DISTRIBUTION = "seglearn"
DATASET_FILE = "seglearn/data/watch_dataset.npy"
#: Units of the file: accelerometer in g, gyroscope in rad/s.
DATASET_UNITS = Units(acc="g", gyro="rad/s")
DATASET_RATE_HZ = 50.0
DATASET_NAME = "seglearn watch_dataset (Burns et al. 2018, shoulder physiotherapy, 50 Hz)"
#: The two subjects the bundled model never sees (training, scaler, tuning);
#: the held-out fixture and the production demo data come from them.
HELDOUT_SUBJECTS: tuple[int, int] = (3, 8)


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
