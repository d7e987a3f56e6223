"""Fixtures of the monitoring unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.monitoring import mp, write_reference


@pytest.fixture(scope="module")
def reference_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reference profile of synthetic data (``make_profiles.py``, its reference seed)."""
    return write_reference(tmp_path_factory.mktemp("ref") / "reference_profile.bin")


@pytest.fixture(scope="module")
def heldout_synthetic() -> object:
    """Synthetic recordings independent of the reference (seed 2, 30 recordings)."""
    return mp.synthetic(seed=2, n_recordings=30)
