"""Training and serving compute the same model input.

The windows the reference model was trained on come from
``har.training.data.windows_of`` (the shared ``Preprocessor``); a user who sends the same
samples as a canonical CSV, or as a Garmin export pair, goes through
``read_csv_recording`` / ``read_garmin_pair`` and the service's :class:`har.core.scorer.Scorer`
(which builds its own ``Preprocessor`` from the served card). These tests build the two
independently (training: the data set's labelled recordings cut by ``windows_of`` with the
training pipeline's card, ``har.training.fit.base_card``; serving: the file read back and
scored by a ``Scorer`` whose model records the input it is given) and prove they give the
same windows and the same scaled model input.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from har.core.scorer import Scorer
from har.domain.card import ModelCard, Units
from har.domain.preprocessing import Preprocessor
from har.domain.recordings import Recording, read_csv_recording, read_garmin_pair, write_garmin_pair
from har.training import data as dataset
from har.training.fit import base_card
from tests.helpers.paths import PRETRAINED, PRODUCTION

CARD = PRETRAINED / "card.json"


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return ModelCard.from_file(CARD)


@pytest.fixture(scope="module")
def watch() -> dataset.WatchDataset:
    return dataset.load_watch_dataset()


@pytest.fixture(scope="module")
def labelled(watch) -> dataset.LabelledRecording:
    return watch.of_subjects(dataset.HELDOUT_SUBJECTS)[0]


class Served:
    """What the serving path computes for a recording: window start times (s) and the scaled
    model input ``(N, window, 6)`` that reached the model."""

    def __init__(self, card: ModelCard, rec: Recording) -> None:
        seen: list[np.ndarray] = []

        async def infer(scaled: np.ndarray) -> np.ndarray:
            seen.append(np.array(scaled))
            return np.full((len(scaled), len(card.classes)), 1 / len(card.classes), np.float32)

        scorer = Scorer(card, "parity:test", infer, max_windows=10_000)
        result = asyncio.run(scorer.predict_recording(rec))
        self.start_s = result.windows.start_s
        self.scaled = np.concatenate(seen) if seen else np.empty((0, card.window, 6))


def trained_on(card: ModelCard, recordings: list) -> tuple[np.ndarray, np.ndarray]:
    """Training windows as the pipeline cuts them (its own card), scaled with the card's
    scaler: ``(start_s, scaled)``."""
    w = dataset.windows_of(recordings, Preprocessor(base_card(card.classes)))
    return w.start_s, Preprocessor(card).scale(w.values)


def test_csv_upload_gives_the_training_windows(tmp_path, card, labelled):
    start, want = trained_on(card, [labelled])
    path = tmp_path / "rec.csv"
    labelled.recording.to_csv(path)
    served = Served(card, read_csv_recording(path))
    assert len(served.scaled) == len(want) > 5
    np.testing.assert_allclose(served.start_s, start, atol=1e-9)
    np.testing.assert_allclose(served.scaled, want, rtol=1e-4, atol=1e-5)


def test_csv_in_training_units_converts_to_the_same_windows(tmp_path, card, labelled):
    """The data set's own units (g, rad/s) declared by the client give the same input."""
    rec = labelled.recording
    native = Recording(rec.time, rec.values / np.array([9.80665] * 3 + [180 / np.pi] * 3))
    path = tmp_path / "native.csv"
    native.to_csv(path, decimals=9)
    served = Served(card, read_csv_recording(path, units=Units(acc="g", gyro="rad/s")))
    _, want = trained_on(card, [labelled])
    np.testing.assert_allclose(served.scaled, want, rtol=1e-4, atol=1e-5)


def test_garmin_pair_gives_the_training_windows(tmp_path, card, labelled):
    acc, gyro = tmp_path / "a.csv", tmp_path / "g.csv"
    write_garmin_pair(labelled.recording, acc, gyro)
    served = Served(card, read_garmin_pair(acc, gyro))
    _, want = trained_on(card, [labelled])
    assert len(served.scaled) == len(want)
    # Garmin files carry milli-g with 3 decimals (1e-5 m/s²) and deg/s with 3 decimals;
    # in scaled units (divided by the scaler's standard deviations, all above 1) that is < 2e-3.
    np.testing.assert_allclose(served.scaled, want, rtol=1e-4, atol=2e-3)


def test_100hz_demo_session_gives_the_training_windows_of_its_first_exercise(card, watch):
    """The committed 100 Hz demo CSV, scored like an upload, comes back to the 50 Hz
    training windows (upsampling x2 then the service's anti-aliased resampling)."""
    truth = json.loads((PRODUCTION / "session_canonical_100hz.truth.json").read_text())
    first = truth["segments"][0]
    source = next(r for r in watch.recordings if r.index == first["source_recording"])
    start, want = trained_on(card, [source])
    served = Served(card, read_csv_recording(PRODUCTION / "session_canonical_100hz.csv"))
    n = len(want)
    np.testing.assert_allclose(served.start_s[:n], start, atol=1e-6)
    err = np.abs(served.scaled[:n] - want)  # in units of the scaler's standard deviation
    assert err.mean() < 0.02
    assert err.max() < 0.15
    # the tolerance is tight enough to notice windows off by one hop (2 s)
    shifted = np.abs(served.scaled[1 : n + 1] - want)
    assert shifted.mean() > 10 * err.mean()
