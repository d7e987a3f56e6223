"""Temperature scaling (har/domain/calibration.py) on synthetic labelled probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from har.domain.calibration import (
    Calibration,
    apply_temperature,
    calibrate,
    ece,
    fit_temperature,
    nll,
    reliability,
    split_indices,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _calibrated_sample(n: int, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, k))
    p = _softmax(z)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


def test_apply_temperature_keeps_the_class_and_softens_or_sharpens() -> None:
    z, _ = _calibrated_sample(200)
    p = _softmax(z).astype(np.float32)
    soft, sharp = apply_temperature(p, 2.0), apply_temperature(p, 0.5)
    assert (soft.argmax(1) == p.argmax(1)).all() and (sharp.argmax(1) == p.argmax(1)).all()
    assert (soft.max(1) <= p.max(1) + 1e-6).all() and (sharp.max(1) >= p.max(1) - 1e-6).all()
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(apply_temperature(p, 2.0), _softmax(np.log(p) / 2.0), atol=1e-6)
    assert apply_temperature(p, 1.0) is not None
    np.testing.assert_array_equal(apply_temperature(p, 1.0), p)


def test_fit_recovers_the_temperature_of_an_overconfident_model() -> None:
    z, y = _calibrated_sample(4000)
    overconfident = _softmax(3.0 * z)  # the logits scaled by 3: T = 3 undoes it
    assert fit_temperature(overconfident, y) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(_softmax(z), y) == pytest.approx(1.0, rel=0.1)


def test_ece_and_nll_of_known_cases() -> None:
    # two windows at confidence 0.8, one right, one wrong: |0.5 - 0.8| = 0.3
    p = np.array([[0.8, 0.2], [0.8, 0.2]])
    assert ece(p, np.array([0, 1])) == pytest.approx(0.3)
    assert nll(p, np.array([0, 1])) == pytest.approx(-(np.log(0.8) + np.log(0.2)) / 2)
    rel = reliability(p, np.array([0, 1]), bins=10)
    assert [b.count for b in rel] == [0] * 7 + [2] + [0] * 2  # 0.8 falls in (0.7, 0.8]
    assert rel[7].accuracy == 0.5 and rel[7].confidence == pytest.approx(0.8)
    z, y = _calibrated_sample(4000, seed=1)
    assert ece(_softmax(z), y) < 0.03 < ece(_softmax(3.0 * z), y)


def test_split_keeps_groups_apart_and_covers_every_window() -> None:
    groups = np.repeat([7, 3, 9, 1, 5], [10, 20, 5, 8, 7])
    fit, ev, how = split_indices(len(groups), groups)
    assert set(groups[fit]).isdisjoint(set(groups[ev]))
    assert sorted([*fit, *ev]) == list(range(len(groups)))
    assert set(groups[fit]) == {7, 9, 5} and "3 groups fitted" in how
    fit, ev, how = split_indices(9)
    assert list(fit) == [0, 1, 2, 3] and list(ev) == [4, 5, 6, 7, 8] and "half" in how


def test_calibrate_applies_a_temperature_that_helps_on_windows_it_did_not_see() -> None:
    z, y = _calibrated_sample(3000, seed=2)
    cal = calibrate(_softmax(3.0 * z), y, groups=np.arange(3000) // 100, group_name="recording")
    assert cal.applied and cal.reason == ""
    assert cal.ece_after < cal.ece_before and cal.nll_after < cal.nll_before
    assert cal.windows_fit + cal.windows_eval == 3000 and cal.windows_fit == 1500
    assert "recording" in cal.split
    assert cal.served_temperature == cal.temperature == pytest.approx(3.0, rel=0.15)
    assert Calibration.model_validate_json(cal.model_dump_json()) == cal


def test_calibrate_does_not_apply_a_temperature_that_hurts() -> None:
    # the fitting part is over-confident, the evaluation part is not: T > 1 fitted on the
    # first hurts the second, so the card keeps the evidence and the raw output is served
    z, y = _calibrated_sample(2000, seed=3)
    p = np.concatenate([_softmax(3.0 * z[:1000]), _softmax(z[1000:])])
    cal = calibrate(p, y)
    assert cal.temperature > 2
    assert not cal.applied and cal.served_temperature is None
    assert "raw probabilities are served" in cal.reason


def test_calibrate_refuses_too_few_windows() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        calibrate(np.full((3, 2), 0.5), np.zeros(3, int))
