"""Helpers shared by the monitoring unit tests (``tests/unit/monitoring/``).

Synthetic wrist-IMU data come from ``tests/fixtures/profiles/make_profiles.py``
(independent seeds = independent samples of one distribution).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from prometheus_client import REGISTRY

from har.domain.card import ModelCard
from har.monitoring import (
    Monitor,
    build_reference_profile,
    profiles,
    store,
    write_reference_profile,
)
from har.settings import PRETRAINED_DIR, Settings
from tests.helpers.cards import make_card
from tests.helpers.paths import FIXTURES, read_heldout

FIXTURE_PROFILES = FIXTURES / "profiles"
BUNDLED_REFERENCE = PRETRAINED_DIR / "reference_profile.bin"
#: The threshold the drift tests hold the service to (see har.monitoring.drift).
THRESHOLD = 0.7
G = 9.80665


def _load_make_profiles() -> ModuleType:
    name = "har_test_make_profiles"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FIXTURE_PROFILES / "make_profiles.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


mp = _load_make_profiles()


def card() -> ModelCard:
    return make_card(mp.CLASSES, mean=[0.0] * 6, scale=[1.0] * 6)


def settings(tmp_path: Path, **kw: object) -> Settings:
    """Test settings: profiles under ``tmp_path``; no drift refresher unless asked."""
    base: dict[str, object] = {
        "profile_dir": tmp_path / "profiles",
        "profile_interval_s": 300.0,
        "profile_queue_size": 100_000,
        "profile_flush_s": 5.0,
        "drift_threshold": THRESHOLD,
        "drift_min_rows": 100,
        "drift_every_s": 0.0,
        "uncertain_below": 0.6,
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def files_rows(folder: Path) -> tuple[int, list[store.ProfileFile]]:
    """Rows in every profile file of ``folder`` (final and partial, as readers see them)."""
    files = store.list_profiles(folder)
    return sum(profiles.row_count(profiles.read_view(f.path)) for f in files), files


def write_reference(path: Path) -> Path:
    ref = mp.synthetic(seed=1, n_recordings=120)
    write_reference_profile(
        build_reference_profile(
            ref.windows, ref.probs, classes=list(mp.CLASSES), sequence_ids=ref.sequence
        ),
        path,
    )
    return path


def observe_all(mon: Monitor, windows: np.ndarray, probs: np.ndarray, chunk: int = 37) -> None:
    for i in range(0, len(windows), chunk):
        mon.observe(windows[i : i + chunk], probs[i : i + chunk], sequence_key=f"k{i % 4}")


def broken(kind: str, windows: np.ndarray) -> np.ndarray:
    """Windows as a broken client would send them (values in canonical-unit slots)."""
    w = windows.copy()
    if kind == "milli_g_as_m_s2":
        w[..., :3] *= 1000.0 / G
    elif kind == "rad_s_as_deg_s":
        w[..., 3:] *= np.pi / 180.0
    elif kind.startswith("stuck_"):
        w[..., int(kind.removeprefix("stuck_"))] = 0.0
    return w


def real_heldout() -> dict[str, np.ndarray]:
    """The committed held-out windows of real subjects (canonical units)."""
    return read_heldout()
