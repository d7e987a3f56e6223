"""The bundled reference model does what its card says on the committed held-out windows."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from har.domain.card import ModelCard
from har.domain.preprocessing import Preprocessor
from har.training import data as dataset
from tests.helpers.paths import HELDOUT_NPZ as FIXTURE
from tests.helpers.paths import PRETRAINED, PRODUCTION


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return ModelCard.from_file(PRETRAINED / "card.json")


@pytest.fixture(scope="module")
def model():
    import keras

    return keras.saving.load_model(PRETRAINED / "har-cnn-bilstm.keras", compile=False)


@pytest.fixture(scope="module")
def predicted(model, card, heldout_windows) -> np.ndarray:
    x = Preprocessor(card).scale(heldout_windows["windows"])
    return np.asarray(model.predict(x, batch_size=128, verbose=0))


def test_card_describes_the_bundled_model(card, model):
    assert card.name == "har-cnn-bilstm"
    assert card.classes == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    assert (card.window, card.hop, card.sample_rate_hz) == (200, 100, 50)
    assert card.units.acc == "m/s2" and card.units.gyro == "deg/s"
    card.check_model(model.input_shape, model.output_shape)
    assert model.output_shape[-1] == len(card.classes)


def test_fixture_is_the_one_the_card_was_scored_on(card, heldout_windows):
    h = card.metrics["heldout"]
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == h["sha256"]
    assert FIXTURE.stat().st_size < 1024 * 1024
    assert heldout_windows["windows"].dtype == np.float32
    assert heldout_windows["windows"].shape == (h["n_windows"], card.window, card.n_channels)
    assert sorted(np.unique(heldout_windows["subjects"]).tolist()) == sorted(h["subjects"])
    assert not set(h["subjects"]) & set(card.training["train_subjects"])
    assert set(h["subjects"]) == set(dataset.HELDOUT_SUBJECTS)


def test_heldout_accuracy_matches_the_card(card, heldout_windows, predicted):
    from sklearn.metrics import f1_score

    y = heldout_windows["labels"]
    pred = predicted.argmax(axis=1)
    acc = float((pred == y).mean())
    h = card.metrics["heldout"]
    assert acc == pytest.approx(h["accuracy"], abs=0.005)
    assert f1_score(y, pred, average="macro") == pytest.approx(h["macro_f1"], abs=0.01)
    assert acc > 0.8  # a retrained model that got much worse should not ship quietly


def test_heldout_confusion_matches_the_card(predicted, heldout_windows, card):
    """The card's held-out confusion matrix (rows: true class, columns: predicted) is the
    bundled model's on the committed windows, within one window per cell (float noise)."""
    y, pred = heldout_windows["labels"], predicted.argmax(axis=1)
    k = len(card.classes)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (y, pred), 1)
    assert np.abs(confusion - np.array(card.metrics["heldout"]["confusion"])).max() <= 1


def test_card_reports_leave_subjects_out(card):
    lso = card.metrics["leave_subjects_out"]
    folds = lso["folds"]
    assert len(folds) == 5
    tested = sorted(s for f in folds for s in f["test_subjects"])
    assert tested == list(range(1, 11))
    assert lso["mean"]["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in folds]))
    assert lso["mean"]["macro_f1"] == pytest.approx(np.mean([f["macro_f1"] for f in folds]))
    cm = np.asarray(lso["confusion_matrix"]["counts"])
    assert cm.shape == (7, 7)
    assert cm.sum() == sum(f["n_windows"] for f in folds)
    assert np.trace(cm) / cm.sum() == pytest.approx(
        sum(f["accuracy"] * f["n_windows"] for f in folds) / cm.sum()
    )


@pytest.mark.parametrize(
    ("files", "truth_file", "min_share"),
    [
        (("session_canonical_100hz.csv",), "session_canonical_100hz.truth.json", 0.75),
        (
            ("session-accelerometer_data.csv", "session-gyroscope_data.csv"),
            "session-garmin.truth.json",
            0.8,
        ),
    ],
)
def test_demo_sessions_timeline_follows_the_exercises(model, card, files, truth_file, min_share):
    """Scored like an upload (100 Hz, resampled to 50 Hz), the demo data's windows
    mostly carry the exercise that was really done at that time."""
    from har.domain.recordings import read_csv_recording, read_garmin_pair

    paths = [PRODUCTION / f for f in files]
    rec = read_csv_recording(*paths) if len(paths) == 1 else read_garmin_pair(*paths)
    truth = json.loads((PRODUCTION / truth_file).read_text())
    pre = Preprocessor(card)
    w = pre.windows(rec.time, rec.values)
    pred = np.asarray(model.predict(pre.scale(w.values), verbose=0)).argmax(axis=1)
    hits, total, majority_right = 0, 0, 0
    for seg in truth["segments"]:
        inside = (w.start_s >= seg["start"] - 1e-6) & (w.end_s <= seg["end"] + 1e-6)
        labels = [card.classes[i] for i in pred[inside]]
        assert labels, f"no window inside {seg}"
        hits += labels.count(seg["activity"])
        total += len(labels)
        majority_right += max(set(labels), key=labels.count) == seg["activity"]
    assert hits / total >= min_share
    assert majority_right >= len(truth["segments"]) - 1
