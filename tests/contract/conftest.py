"""The contract suite: what a user calls, checked against one target per run.

``pytest tests/contract`` (part of ``make test``) runs it against a real ``bentoml serve``;
``pytest tests/contract --target image`` (``make image-test``) against the built image. The
same test code, the same extra environment: a check that passes on one and fails on the
other is a shipping defect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.targets import Running, engine, last_image, launch

#: Environment every target of the suite gets, over its own defaults. ``HAR_CALIBRATION=0``:
#: the suite compares the served probabilities with the Keras model's raw softmax (the
#: calibrated path is checked against calibrated Keras in tests/e2e/test_calibration_serving.py).
CONTRACT_ENV = {
    "HAR_CALIBRATION": "0",
    "HAR_MAX_WINDOWS_PER_REQUEST": "256",
    "HAR_MAX_REQUEST_BYTES": str(8 * 1024 * 1024),
    "HAR_DRIFT_EVERY_S": "2",
    "HAR_PROFILE_INTERVAL_S": "2",
}
#: Tokens of the ``guarded`` target.
TOKENS = ("contract-token-1", "contract-token-2")


@pytest.fixture(scope="session")
def target_kind(request) -> str:
    """``dev`` or ``image`` (``--target``)."""
    return str(request.config.getoption("--target"))


@pytest.fixture(scope="session")
def image(request, target_kind) -> str | None:
    """The image under test (``--image`` or the last one ``make image`` built); None for dev."""
    if target_kind != "image":
        return None
    return str(request.config.getoption("--image") or last_image())


@pytest.fixture(scope="session")
def served_tag(target_kind, image, request) -> str:
    """The model tag the target serves: the image's ``HAR_MODEL_TAG``, or the bundled model."""
    if target_kind == "image":
        assert image is not None
        env = json.loads(engine("image", "inspect", "--format", "{{json .Config.Env}}", image))
        tags = [e.split("=", 1)[1] for e in env if e.startswith("HAR_MODEL_TAG=")]
        assert tags, f"{image} sets no HAR_MODEL_TAG"
        return tags[0]
    return str(request.getfixturevalue("bundled_tag"))


@pytest.fixture(scope="session")
def start_target(
    target_kind, image, tmp_path_factory
) -> Callable[[dict[str, str]], AbstractContextManager[Running]]:
    """A factory: ``with start_target(env) as t:`` a fresh target with ``env`` over the suite's."""

    def start(env: dict[str, str]) -> AbstractContextManager[Running]:
        log_dir = tmp_path_factory.mktemp(f"{target_kind}-target")
        return launch(target_kind, {**CONTRACT_ENV, **env}, log_dir=log_dir, image=image)

    return start


@pytest.fixture(scope="session")
def served(start_target) -> Iterator[Running]:
    """The target as shipped: tokens off, no shadow model (one per session)."""
    with start_target({}) as t:
        yield t


@pytest.fixture(scope="session")
def guarded(start_target) -> Iterator[Running]:
    """The target with ``HAR_API_TOKENS`` set to :data:`TOKENS`."""
    with start_target({"HAR_API_TOKENS": ",".join(TOKENS)}) as t:
        yield t


@pytest.fixture(scope="session")
def window() -> list[list[float]]:
    """One window (200 x 6, canonical units) from ``data/production/window.json``."""
    return json.loads((ROOT / "data" / "production" / "window.json").read_text())["windows"][0]


@pytest.fixture(scope="session")
def reference():
    """The bundled model and card, loaded here from the repository's files (not the target)."""
    import keras

    from har.domain.card import ModelCard

    card = ModelCard.from_file(ROOT / "models" / "pretrained" / "card.json")
    model = keras.models.load_model(
        ROOT / "models" / "pretrained" / "har-cnn-bilstm.keras", compile=False
    )
    return model, card


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return ROOT / "tests" / "fixtures"
