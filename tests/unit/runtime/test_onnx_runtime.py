"""The ONNX export at import, its parity evidence, and which runtime serves a stored model."""

from __future__ import annotations

import numpy as np
import pytest

from har.domain.card import ModelCard, OnnxEvidence
from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor
from har.runtime import model_store, onnx_export
from har.runtime.onnx_model import ONNX_FILE, OnnxModel, choose_runtime, file_sha256
from har.serving.model_worker import model_worker
from har.settings import Settings


@pytest.fixture(scope="module")
def stored(bundled_tag):
    """``(tag, folder, card)`` of the bundled model as imported into the session's store."""
    return model_store.load_card(bundled_tag)


def test_import_exports_the_checked_file_with_passing_evidence(stored, heldout_windows):
    _, folder, card = stored
    ev = card.onnx
    assert ev is not None and ev.passed, ev
    assert ev.max_abs_diff is not None and ev.max_abs_diff <= onnx_export.PARITY_TOLERANCE
    n_heldout = len(heldout_windows["windows"])
    assert ev.windows == ev.same_class == onnx_export.PROBE_WINDOWS + n_heldout
    assert any("heldout_windows.npz" in d for d in ev.data)
    assert file_sha256(folder / ONNX_FILE) == ev.sha256
    assert ev.opset and ev.onnxruntime


def test_onnx_model_equals_keras_on_heldout_windows_and_any_batch_size(stored, heldout_windows):
    tag, folder, card = stored
    keras_model = model_store.load_model(tag, probe=False).model
    x = Preprocessor(card).scale(heldout_windows["windows"][:300])
    want = np.asarray(keras_model(x, training=False))
    run = OnnxModel(folder / ONNX_FILE, threads=1, max_batch_size=128)  # 300: three chunks
    np.testing.assert_allclose(run(x), want, atol=1e-5)
    np.testing.assert_allclose(run(x[:1]), want[:1], atol=1e-5)
    assert run(x[:0]).shape == (0, len(card.classes))


def _card_with(card: ModelCard, **evidence) -> ModelCard:
    base = {"passed": True, "max_abs_diff": 1e-7, "windows": 10, "same_class": 10}
    return card.model_copy(update={"onnx": OnnxEvidence(**{**base, **evidence})})


def test_auto_serves_onnx_only_with_passing_evidence_for_the_same_file(stored, tmp_path):
    _, folder, card = stored
    sha = card.onnx.sha256
    (tmp_path / ONNX_FILE).write_bytes((folder / ONNX_FILE).read_bytes())
    assert choose_runtime("auto", _card_with(card, sha256=sha), tmp_path).runtime == "onnx"
    cases = {
        "no ONNX export evidence": card.model_copy(update={"onnx": None}),
        "did not pass: max |Δp| 0.2": _card_with(card, passed=False, reason="max |Δp| 0.2"),
        "sha256 differs": _card_with(card, sha256="0" * 64),
    }
    for why, c in cases.items():
        choice = choose_runtime("auto", c, tmp_path)
        assert choice.runtime == "tensorflow" and why in choice.reason, (why, choice)
        with pytest.raises(InputError, match="HAR_RUNTIME=onnx, but"):
            choose_runtime("onnx", c, tmp_path)
    (tmp_path / ONNX_FILE).unlink()
    missing = choose_runtime("auto", _card_with(card, sha256=sha), tmp_path)
    assert missing.runtime == "tensorflow" and "missing" in missing.reason
    forced = choose_runtime("tensorflow", _card_with(card, sha256=sha), folder)
    assert forced.runtime == "tensorflow" and forced.reason == "HAR_RUNTIME=tensorflow"


def test_a_model_whose_export_fails_is_stored_and_served_on_tensorflow(
    user_model_files, monkeypatch
):
    def fail(model, card):
        raise ValueError("unsupported op: TensorList")

    monkeypatch.setattr(onnx_export, "export_onnx", fail)
    monkeypatch.setattr(model_store, "_EXPORTED", {})  # not this process's earlier export
    tag = model_store.import_model(*user_model_files, name="no-onnx")
    _, folder, card = model_store.load_card(tag)
    assert card.onnx is not None and not card.onnx.passed
    assert "export failed: ValueError: unsupported op: TensorList" in card.onnx.reason
    assert not (folder / ONNX_FILE).exists()
    served = model_worker(Settings(runtime="auto", xla=False), tag)
    assert served.choice.runtime == "tensorflow" and "did not pass" in served.choice.reason
    assert served.info()["name"] == "tensorflow"
    assert served.run(np.zeros((2, 200, 6), np.float32)).shape == (2, 11)


def test_parity_beyond_tolerance_fails_the_evidence(user_model_files, monkeypatch):
    monkeypatch.setattr(onnx_export, "check_parity", lambda m, b, w, **k: (3e-4, len(w)))
    model = model_store.load_keras(user_model_files[0])
    card = ModelCard.from_file(user_model_files[1])
    onnx_bytes, ev = onnx_export.export_with_evidence(model, card)
    assert onnx_bytes and not ev.passed and ev.reason == "max |Δp| 0.0003 > 1e-05"
    monkeypatch.setattr(onnx_export, "check_parity", lambda m, b, w, **k: (1e-7, len(w) - 1))
    _, ev = onnx_export.export_with_evidence(model, card)
    assert not ev.passed and ev.reason == f"predicted class differs on 1 of {ev.windows}"


def test_parity_data_that_does_not_fit_the_card_is_left_out(user_model_files, tmp_path):
    card = ModelCard.from_file(user_model_files[1])
    np.savez(tmp_path / "short.npz", windows=np.zeros((4, 100, 6), np.float32))
    np.savez(tmp_path / "fits.npz", windows=np.ones((5, 200, 6), np.float32))
    model = model_store.load_keras(user_model_files[0])
    _, ev = onnx_export.export_with_evidence(
        model, card, [tmp_path / "short.npz", tmp_path / "fits.npz"]
    )
    assert ev.passed and ev.windows == onnx_export.PROBE_WINDOWS + 5
    assert ev.data[1:] == ["fits.npz: 5 windows"]


def test_the_model_worker_serves_on_onnx_when_asked(stored):
    tag, _, _ = stored
    served = model_worker(Settings(runtime="onnx"), tag)
    assert served.choice.runtime == "onnx" and served.threads == 1
    out = served.run(np.zeros((3, 200, 6), np.float32))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
