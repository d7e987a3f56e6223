"""Folders of the repository the tests read (the one place the project root is computed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The repository root (the folder holding ``pyproject.toml``).
ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
#: Committed held-out windows of the bundled model: ``windows`` ``(N, 200, 6)`` float32 in
#: canonical units (m/s², deg/s), ``labels`` ``(N,)`` class ids.
HELDOUT_NPZ = FIXTURES / "heldout_windows.npz"
PRODUCTION = ROOT / "data" / "production"
PRETRAINED = ROOT / "models" / "pretrained"


def read_heldout() -> dict[str, np.ndarray]:
    """The arrays of :data:`HELDOUT_NPZ` by name (``windows``, ``labels``, ``subjects``)."""
    with np.load(HELDOUT_NPZ) as f:
        return {k: f[k] for k in f.files}
