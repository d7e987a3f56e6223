"""har.monitoring.reference: the reference profile of training windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from har.monitoring import (
    build_reference_profile,
    profiles,
    read_reference_profile,
    write_reference_profile,
)
from har.monitoring.features import FLIP
from tests.helpers.monitoring import mp


def test_reference_profile_round_trip(tmp_path: Path) -> None:
    data = mp.synthetic(seed=2, n_recordings=30)
    view = build_reference_profile(
        data.windows, data.probs, classes=list(mp.CLASSES), sequence_ids=data.sequence
    )
    path = tmp_path / "ref.bin"
    write_reference_profile(view, path)
    back = read_reference_profile(path)
    assert profiles.row_count(back) == len(data.windows)
    assert profiles.classes_of(back) == list(mp.CLASSES)
    d = profiles.distribution(back, "acc_mag_mean")
    assert d is not None and 8.0 < d.mean < 14.0  # gravity plus motion, m/s²
    # flips only within a recording: one pair fewer per recording than windows
    flips = profiles.distribution(back, FLIP)
    n_rec = len(np.unique(data.sequence))
    assert flips is not None and flips.n == len(data.windows) - n_rec
