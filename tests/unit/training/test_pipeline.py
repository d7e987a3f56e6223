"""Training code: the architecture, the scaler, augmentation, folds, and a one-epoch smoke run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from har import registry
from har.card import ModelCard
from har.errors import InputError
from har.preprocessing import Preprocessor
from har.settings import PRETRAINED_DIR
from har.training import artifacts, augmentation, evaluate, fit, pipeline
from har.training import data as dataset

EXPECTED_LAYERS = [
    "Conv1D",
    "BatchNormalization",
    "Dropout",
    "Conv1D",
    "BatchNormalization",
    "Dropout",
    "Bidirectional",
    "BatchNormalization",
    "Dropout",
    "Bidirectional",
    "BatchNormalization",
    "Dropout",
    "Flatten",
    "Dense",
    "BatchNormalization",
    "Dropout",
    "Dense",
]


def test_user_architecture_with_11_classes():
    from har.training.architecture import build_model

    model = build_model(11)
    # "about 499 K" (har/training/architecture.py)
    assert 495_000 <= model.count_params() <= 503_000
    assert tuple(model.input_shape) == (None, 200, 6)
    assert tuple(model.output_shape) == (None, 11)
    assert [type(layer).__name__ for layer in model.layers] == EXPECTED_LAYERS
    assert model.layers[-1].get_config()["activation"] == "softmax"
    lstm = [layer.forward_layer for layer in model.layers if hasattr(layer, "forward_layer")]
    assert [(x.units, x.return_sequences) for x in lstm] == [(64, True), (32, True)]


def test_fit_scaler_is_per_channel_over_all_samples():
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(7, 20, 6)) * [1, 2, 3, 4, 5, 6] + [0, 0, 9.8, 0, 0, 0]).astype(np.float32)
    s = fit.fit_scaler(w)
    np.testing.assert_allclose(s.mean, w.reshape(-1, 6).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.scale, w.reshape(-1, 6).std(0), rtol=1e-5)


def test_augmentation_rotates_both_sensors_rigidly():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 50, 6)).astype(np.float32)
    r = augmentation.random_rotations(np.random.default_rng(2), 100, 15.0)
    np.testing.assert_allclose(
        r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0)
    angle = np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angle.max() <= 15.0 + 1e-6 and angle.max() > 5.0

    same = augmentation.augment(w, np.random.default_rng(3), 0.0, 0.0)
    np.testing.assert_allclose(same, w, atol=1e-6)
    rot = augmentation.augment(w, np.random.default_rng(3), 15.0, 0.0)
    assert not np.allclose(rot, w, atol=1e-3)
    for sl in (slice(0, 3), slice(3, 6)):  # rotation keeps each vector's length
        np.testing.assert_allclose(
            np.linalg.norm(rot[..., sl], axis=-1), np.linalg.norm(w[..., sl], axis=-1), rtol=1e-4
        )


def test_folds_cover_every_subject_once_and_hold_out_the_fixture_subjects():
    folds = evaluate.subject_folds(range(1, 11))
    assert len(folds) == 5
    assert all(len(f) == 2 for f in folds)
    flat = [s for f in folds for s in f]
    assert sorted(flat) == list(range(1, 11))
    assert tuple(sorted(dataset.HELDOUT_SUBJECTS)) in folds


def test_quick_run_refuses_to_overwrite_the_bundled_model():
    with pytest.raises(InputError, match="quick"):
        pipeline.train_reference(PRETRAINED_DIR, quick=True)


@pytest.mark.slow
def test_one_epoch_smoke_run_writes_a_valid_model_and_card(tmp_path, monkeypatch):
    real = dataset.windows_of

    def tiny(recordings, pre):  # every 12th window of the data set: ~190 windows
        ws = real(recordings, pre)
        return ws.select(np.arange(0, len(ws), 12))

    monkeypatch.setattr(pipeline, "windows_of", tiny)
    from tensorflow.python.framework import config as tf_config

    determinism_before = tf_config.is_op_determinism_enabled()
    card_path = pipeline.train_reference(tmp_path, quick=True, epochs=1, seed=3)
    assert tf_config.is_op_determinism_enabled() == determinism_before  # process left as found

    card = ModelCard.from_file(card_path)
    assert card.name == "har-cnn-bilstm"
    assert card.classes == list(dataset.load_watch_dataset().classes)
    assert (card.window, card.hop, card.sample_rate_hz) == (200, 100, 50)
    assert card.units.acc == "m/s2" and card.units.gyro == "deg/s"
    assert card.training["quick"] is True and card.training["seed"] == 3
    assert card.training["heldout_subjects"] == list(dataset.HELDOUT_SUBJECTS)
    assert not set(card.training["train_subjects"]) & set(dataset.HELDOUT_SUBJECTS)
    # the scaler comes from the training windows only (not the held-out subjects)
    ds = dataset.load_watch_dataset()
    seen = tiny(ds.recordings, Preprocessor(card))
    seen = seen.select(~np.isin(seen.subjects, dataset.HELDOUT_SUBJECTS))
    expected = fit.fit_scaler(seen.values)
    np.testing.assert_allclose(card.scaler.mean, expected.mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(card.scaler.scale, expected.scale, rtol=1e-6)
    assert 20 < card.scaler.scale[4] < 500  # gyro spread in deg/s, not rad/s
    assert json.loads(card_path.read_text())["training"]["config"]["epochs"] == 1

    import keras

    model = keras.saving.load_model(tmp_path / registry.BUNDLED_MODEL_FILE, compile=False)
    card.check_model(model.input_shape, model.output_shape)
    with np.load(tmp_path / artifacts.HELDOUT_FILE) as f:
        x, y = f["windows"], f["labels"]
    assert x.dtype == np.float32 and x.shape[1:] == (200, 6)
    assert card.metrics["heldout"]["n_windows"] == len(y)
    pred = model.predict(Preprocessor(card).scale(x), verbose=0).argmax(axis=1)
    assert card.metrics["heldout"]["accuracy"] == pytest.approx(float((pred == y).mean()))
    from har.monitoring import read_reference_profile
    from har.monitoring.profiles import row_count

    reference = read_reference_profile(tmp_path / registry.REFERENCE_FILE)
    assert row_count(reference) == card.training["n_train_windows"]
    assert not (tmp_path / "session_canonical_100hz.csv").exists()  # demo data untouched
