"""Training and serving compute the same model input.

The windows the reference model was trained on come from
``har.training.data.windows_of`` (the shared ``Preprocessor``); a user who sends the same
samples as a canonical CSV, or as a Garmin export pair, goes through
``read_csv_recording`` / ``read_garmin_pair`` and the same ``Preprocessor``. These
tests prove the two paths give the same windows and the same scaled input.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from har.card import ModelCard, Units
from har.preprocessing import Preprocessor
from har.recordings import Recording, read_csv_recording, read_garmin_pair, write_garmin_pair
from har.training import data as dataset
from tests.helpers.paths import PRETRAINED, PRODUCTION

CARD = PRETRAINED / "card.json"


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return ModelCard.from_file(CARD)


@pytest.fixture(scope="module")
def labelled() -> dataset.LabelledRecording:
    ds = dataset.load_watch_dataset()
    return ds.of_subjects(dataset.HELDOUT_SUBJECTS)[0]


def test_csv_upload_gives_the_training_windows(tmp_path, card, labelled):
    pre = Preprocessor(card)
    trained_on = dataset.windows_of([labelled], pre)

    path = tmp_path / "rec.csv"
    labelled.recording.to_csv(path)
    served = pre.windows(*_arrays(read_csv_recording(path)))

    assert len(trained_on) == len(served) > 5
    np.testing.assert_allclose(served.values, trained_on.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served.start_s, trained_on.start_s, atol=1e-9)
    np.testing.assert_allclose(
        pre.scale(served.values), pre.scale(trained_on.values), rtol=1e-5, atol=1e-5
    )


def test_csv_in_training_units_converts_to_the_same_windows(tmp_path, card, labelled):
    """The data set's own units (g, rad/s) declared by the client give the same input."""
    pre = Preprocessor(card)
    rec = labelled.recording
    native = Recording(rec.time, rec.values / np.array([9.80665] * 3 + [180 / np.pi] * 3))
    path = tmp_path / "native.csv"
    native.to_csv(path, decimals=9)
    served = pre.windows(*_arrays(read_csv_recording(path, units=Units(acc="g", gyro="rad/s"))))
    trained_on = dataset.windows_of([labelled], pre)
    np.testing.assert_allclose(served.values, trained_on.values, rtol=1e-5, atol=1e-5)


def test_garmin_pair_gives_the_training_windows(tmp_path, card, labelled):
    pre = Preprocessor(card)
    acc, gyro = tmp_path / "a.csv", tmp_path / "g.csv"
    write_garmin_pair(labelled.recording, acc, gyro)
    served = pre.windows(*_arrays(read_garmin_pair(acc, gyro)))
    trained_on = dataset.windows_of([labelled], pre)
    assert len(served) == len(trained_on)
    # Garmin files carry milli-g with 3 decimals (1e-5 m/s²) and deg/s with 3 decimals.
    np.testing.assert_allclose(served.values, trained_on.values, rtol=1e-4, atol=2e-3)


def test_100hz_demo_session_gives_the_training_windows_of_its_first_exercise(card):
    """The committed 100 Hz demo CSV, scored like an upload, comes back to the 50 Hz
    training windows (upsampling x2 then the service's anti-aliased resampling)."""
    truth = json.loads((PRODUCTION / "session_canonical_100hz.truth.json").read_text())
    first = truth["segments"][0]
    ds = dataset.load_watch_dataset()
    source = next(r for r in ds.recordings if r.index == first["source_recording"])
    pre = Preprocessor(card)
    trained_on = dataset.windows_of([source], pre)
    served = pre.windows(*_arrays(read_csv_recording(PRODUCTION / "session_canonical_100hz.csv")))
    n = len(trained_on)
    np.testing.assert_allclose(served.start_s[:n], trained_on.start_s, atol=1e-6)
    err = np.abs(served.values[:n] - trained_on.values) / card.scaler.arrays()[1]
    assert err.mean() < 0.02  # in units of the scaler's standard deviation
    assert err.max() < 0.15
    # the tolerance is tight enough to notice windows off by one hop (2 s)
    shifted = np.abs(served.values[1 : n + 1] - trained_on.values) / card.scaler.arrays()[1]
    assert shifted.mean() > 10 * err.mean()


def _arrays(rec: Recording) -> tuple[np.ndarray, np.ndarray]:
    return rec.time, rec.values
