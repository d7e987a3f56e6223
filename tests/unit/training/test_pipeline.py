"""har.training.pipeline: the bundled model is protected; a one-epoch smoke run writes a valid
model, card, held-out windows and reference profile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor
from har.runtime import model_store
from har.settings import PRETRAINED_DIR
from har.training import artifacts, fit, pipeline
from har.training import data as dataset


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

    model = keras.saving.load_model(tmp_path / model_store.BUNDLED_MODEL_FILE, compile=False)
    card.check_model(model.input_shape, model.output_shape)
    with np.load(tmp_path / artifacts.HELDOUT_FILE) as f:
        x, y = f["windows"], f["labels"]
    assert x.dtype == np.float32 and x.shape[1:] == (200, 6)
    assert card.metrics["heldout"]["n_windows"] == len(y)
    pred = model.predict(Preprocessor(card).scale(x), verbose=0).argmax(axis=1)
    assert card.metrics["heldout"]["accuracy"] == pytest.approx(float((pred == y).mean()))
    from har.monitoring import read_reference_profile
    from har.monitoring.profiles import row_count

    reference = read_reference_profile(tmp_path / model_store.REFERENCE_FILE)
    assert row_count(reference) == card.training["n_train_windows"]
    assert not (tmp_path / "session_canonical_100hz.csv").exists()  # demo data untouched
