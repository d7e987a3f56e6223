"""Shared fixtures. Every test session gets its own BentoML home and profile folder,
so tests never touch a developer's model store or logs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="har-tests-"))
os.environ["BENTOML_HOME"] = str(_TMP / "bentoml")
os.environ["HAR_PROFILE_DIR"] = str(_TMP / "profiles")
os.environ.setdefault("HAR_GRPC_PORT", "0")  # in-process service tests: no gRPC port
os.environ.setdefault("HAR_MAX_REQUEST_BYTES", str(8 * 1024 * 1024))
os.environ.setdefault("HAR_MAX_WINDOWS_PER_REQUEST", "256")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from har.card import ModelCard, Scaler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP, ignore_errors=True)


def make_card(classes: list[str], name: str = "user-model", window: int = 200) -> ModelCard:
    """A card for a model with these classes (canonical units, plausible scaler)."""
    return ModelCard(
        name=name,
        classes=classes,
        window=window,
        hop=window // 2,
        sample_rate_hz=50,
        scaler=Scaler(mean=[0, 0, 9.8, 0, 0, 0], scale=[3, 3, 3, 60, 60, 60]),
    )


USER_CLASSES = [
    "ear_rubbing",
    "forehead_rubbing",
    "hair_pulling",
    "hand_scratching",
    "hand_tapping",
    "knuckles_cracking",
    "nail_biting",
    "nape_rubbing",
    "sitting",
    "smoking",
    "standing",
]


@pytest.fixture(scope="session")
def user_model_files(tmp_path_factory) -> tuple[Path, Path]:
    """The user's architecture with 11 classes, untrained, saved with its card."""
    import keras

    from har.training.architecture import build_model

    keras.utils.set_random_seed(1)
    d = tmp_path_factory.mktemp("user-model")
    model = build_model(len(USER_CLASSES))
    model.save(d / "model.keras")
    make_card(USER_CLASSES).to_file(d / "card.json")
    return d / "model.keras", d / "card.json"


@pytest.fixture(scope="session")
def bundled_tag() -> str:
    """The bundled reference model, imported into the session's model store."""
    from har import registry

    return registry.ensure_bundled_model()


@pytest.fixture(scope="session")
def service_client(bundled_tag):
    """The API service in-process (BentoML's ASGI app, the model service as a local
    dependency). One per test session: BentoML registers its Prometheus metrics once
    per process, so a second in-process app fails."""
    import sys

    from starlette.testclient import TestClient

    sys.path.insert(0, str(ROOT))
    import service

    with TestClient(service.HARService.to_asgi()) as c:
        yield c


@pytest.fixture(scope="session")
def heldout() -> dict[str, np.ndarray]:
    """Committed held-out windows (canonical units) with labels."""
    with np.load(FIXTURES / "heldout_windows.npz") as f:
        return {k: f[k] for k in f.files}
