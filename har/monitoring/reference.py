"""The reference profile: the training windows' feature rows, what drift is measured against.

Built by training (``har/training/artifacts.py``, also for the CLI), stored
beside the model as ``reference_profile.bin`` and read by the monitor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from har.domain.card import CANONICAL_CHANNELS
from har.monitoring import profiles
from har.monitoring.features import feature_names, feature_rows
from har.monitoring.profiles import ProfileView


def build_reference_profile(
    windows: np.ndarray,
    probs: np.ndarray,
    *,
    classes: list[str] | None = None,
    sequence_ids: np.ndarray | None = None,
) -> ProfileView:
    """The reference profile of training windows, comparable with production profiles.

    Args:
        windows: ``(N, window, 6)`` float32 training windows in canonical units
            (m/s², deg/s), before the scaler.
        probs: ``(N, n_classes)`` the model's softmax output for them.
        classes: class names (stored in the profile's metadata for reports).
        sequence_ids: ``(N,)`` recording of each window, windows of a recording
            consecutive in time: gives the reference flip rate. ``None``: no flips.
    """
    w, p = np.asarray(windows), np.asarray(probs)
    flips = None
    if sequence_ids is not None:
        seq = np.asarray(sequence_ids)
        pred = p.argmax(axis=1)
        flips = np.full(w.shape[0], np.nan)
        same = seq[1:] == seq[:-1]
        flips[1:][same] = (pred[1:] != pred[:-1])[same]
    meta = {"role": "reference", "channels": json.dumps(list(CANONICAL_CHANNELS))}
    if classes is not None:
        meta["classes"] = json.dumps(list(classes))
    return profiles.profile_rows(feature_names(), feature_rows(w, p, flips), meta)


def write_reference_profile(view: ProfileView, path: Path) -> None:
    """Write a reference profile (whylogs binary format, atomically)."""
    profiles.write_view(view, Path(path))


def read_reference_profile(path: Path) -> ProfileView:
    """Read a reference profile written by :func:`write_reference_profile`."""
    return profiles.read_view(Path(path))
