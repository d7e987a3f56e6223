"""Calibration fitted on real Keras models and the bundled held-out windows
(har/runtime/calibrate.py): checked on windows the fit did not see."""

from __future__ import annotations

import numpy as np
import pytest

from har.domain.calibration import apply_temperature
from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor
from har.runtime import model_store
from har.runtime.calibrate import calibration_for
from tests.helpers.overconfident import write_overconfident_model
from tests.helpers.paths import HELDOUT_NPZ, read_heldout


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return ModelCard.from_file(model_store.BUNDLED_CARD)


def test_bundled_model_calibration_evidence(card) -> None:
    model = model_store.load_keras(model_store.BUNDLED_MODEL)
    cal = calibration_for(model, card, heldout=HELDOUT_NPZ)
    assert cal is not None
    heldout = read_heldout()
    assert cal.windows_fit + cal.windows_eval == len(heldout["labels"])
    assert "recording" in cal.split and cal.data == [HELDOUT_NPZ.name]
    # measured on the evaluation part only, recomputed here from the model's own output
    assert sum(b.count for b in cal.reliability_before) == cal.windows_eval
    # applied exactly when it lowered both measures on the windows it did not see
    assert cal.applied == (cal.ece_after < cal.ece_before and cal.nll_after < cal.nll_before)
    assert 0.3 < cal.temperature < 3.0
    assert 0.8 < cal.accuracy <= 1.0


def test_overconfident_model_is_calibrated_on_windows_it_did_not_see(card, tmp_path) -> None:
    path = write_overconfident_model(tmp_path / "overconfident.keras")
    model = model_store.load_keras(path)
    cal = calibration_for(model, card, heldout=HELDOUT_NPZ)
    assert cal is not None and cal.applied
    assert cal.ece_after < cal.ece_before and cal.nll_after < cal.nll_before
    assert cal.temperature > 1.5  # it softens an over-confident model
    x = Preprocessor(card).scale(read_heldout()["windows"][:32])
    raw = np.asarray(model(x, training=False))
    assert (apply_temperature(raw, cal.temperature).argmax(1) == raw.argmax(1)).all()


def test_calibration_data_given_explicitly_and_refused_when_unusable(card, tmp_path) -> None:
    h = read_heldout()
    names = np.asarray(card.classes)[h["labels"]]
    good = tmp_path / "labelled.npz"
    np.savez(good, windows=h["windows"][:100], labels=names[:100])
    model = model_store.load_keras(model_store.BUNDLED_MODEL)
    cal = calibration_for(model, card, good, heldout=HELDOUT_NPZ)
    assert cal is not None and cal.windows_fit == 50 and cal.data == ["labelled.npz"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, windows=h["windows"][:10], labels=np.array(["swimming"] * 10))
    with pytest.raises(InputError, match="swimming"):
        calibration_for(model, card, bad, heldout=HELDOUT_NPZ)
    other = card.model_copy(update={"classes": [f"c{i}" for i in range(7)]})
    assert calibration_for(model, other, heldout=HELDOUT_NPZ) is None  # default does not fit
