"""The model runtime as ``HAR_RUNTIME`` asks, on the target: the default serves the bundled
model on ONNX Runtime (``test_http_api``); ``HAR_RUNTIME=tensorflow`` serves the same
probabilities on TensorFlow where TensorFlow is installed (the dev server, an image built for
TensorFlow), and an image built for ONNX Runtime refuses it at start, saying why."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from har.domain.preprocessing import Preprocessor
from tests.helpers.targets import engine


def _tensorflow_installed(target_kind: str, image: str | None) -> bool:
    if target_kind == "dev":
        return True
    assert image is not None
    env = json.loads(engine("image", "inspect", "--format", "{{json .Config.Env}}", image))
    lock = dict(e.split("=", 1) for e in env)["HAR_IMAGE_LOCK"]
    return lock.endswith("requirements-tensorflow.lock")


def test_har_runtime_tensorflow(start_target, target_kind, image, reference, heldout_windows):
    env = {"HAR_RUNTIME": "tensorflow", "HAR_XLA": "0"}
    if not _tensorflow_installed(target_kind, image):
        refused = pytest.raises(RuntimeError, match=r"TensorFlow .*which is not installed here")
        with refused, start_target(env):
            pass
        return
    model, card = reference
    x = heldout_windows["windows"][:16]
    with start_target(env) as t:
        with urllib.request.urlopen(f"{t.url}/model", timeout=60) as r:
            runtime = json.loads(r.read())["runtime"]
        assert runtime["name"] == "tensorflow" and runtime["reason"] == "HAR_RUNTIME=tensorflow"
        assert runtime["tensorflow_imported"] is True
        req = urllib.request.Request(
            f"{t.url}/predict",
            json.dumps({"windows": x.tolist()}).encode(),
            {"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            body = json.loads(r.read())
    want = np.asarray(model(Preprocessor(card).scale(x), training=False))
    got = [[p["probabilities"][c] for c in card.classes] for p in body["predictions"]]
    np.testing.assert_allclose(got, want, atol=1e-5)
