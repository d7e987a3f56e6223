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

from tests.helpers.cards import USER_CLASSES, make_card  # noqa: E402
from tests.helpers.paths import ROOT, TESTS, read_heldout  # noqa: E402

#: Folder under tests/ -> marker every test in it gets (``make test-fast`` deselects e2e).
FOLDER_MARKERS = {"unit": "unit", "project": "unit", "e2e": "e2e", "contract": "e2e"}


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--target``: what ``tests/contract`` runs against (``dev`` server or the built ``image``)."""
    parser.addoption(
        "--target",
        choices=("dev", "image"),
        default=os.environ.get("HAR_CONTRACT_TARGET", "dev"),
        help="tests/contract: a real `bentoml serve` (dev) or the image `make image` built",
    )
    parser.addoption(
        "--image",
        default=None,
        help="tests/contract --target image: the image (default: the last built)",
    )


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder (tests/unit and tests/project -> ``unit``, tests/e2e -> ``e2e``)."""
    for item in items:
        try:
            folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        marker = FOLDER_MARKERS.get(folder)
        if marker is not None:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def user_model_files(tmp_path_factory) -> tuple[Path, Path]:
    """The user's architecture with 11 classes, untrained, saved with its card."""
    import keras

    from har.training.architecture import build_model

    keras.utils.set_random_seed(1)
    d = tmp_path_factory.mktemp("user-model")
    model = build_model(len(USER_CLASSES))
    model.save(d / "model.keras")
    make_card(USER_CLASSES, name="user-model").to_file(d / "card.json")
    return d / "model.keras", d / "card.json"


@pytest.fixture(scope="session")
def bundled_tag() -> str:
    """The bundled reference model, imported into the session's model store."""
    from har.runtime import model_store

    return model_store.ensure_bundled_model()


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
def heldout_windows() -> dict[str, np.ndarray]:
    """Committed held-out windows of the bundled model (``tests/fixtures/heldout_windows.npz``):
    ``windows`` ``(N, 200, 6)`` float32 canonical units, ``labels``, ``subjects``."""
    return read_heldout()
