"""har.monitoring.features: the per-window feature rows and flips."""

from __future__ import annotations

import numpy as np

from har.monitoring.features import FlipTracker, feature_names, feature_rows
from tests.helpers.monitoring import G


def test_feature_rows_are_the_documented_statistics() -> None:
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(5, 200, 6)) * [0.5, 0.5, 0.5, 40, 40, 40] + [0, G, 0, 0, 0, 0]).astype(
        np.float32
    )
    p = rng.dirichlet(np.ones(7), 5)
    rows = feature_rows(w, p, np.array([np.nan, 0, 1, 1, 0]))
    col = {n: rows[:, i] for i, n in enumerate(feature_names())}
    x = w.astype(np.float64)
    np.testing.assert_allclose(col["acc_y_mean"], x[:, :, 1].mean(1), rtol=1e-9)
    np.testing.assert_allclose(col["acc_y_std"], x[:, :, 1].std(1), rtol=1e-6)
    np.testing.assert_allclose(col["gyro_z_min"], x[:, :, 5].min(1))
    np.testing.assert_allclose(col["gyro_x_max"], x[:, :, 3].max(1))
    np.testing.assert_allclose(col["acc_mag_mean"], np.linalg.norm(x[:, :, :3], axis=2).mean(1))
    np.testing.assert_allclose(col["gyro_mag_mean"], np.linalg.norm(x[:, :, 3:], axis=2).mean(1))
    np.testing.assert_array_equal(col["pred_class"], p.argmax(1))
    np.testing.assert_allclose(col["confidence"], p.max(1))
    np.testing.assert_allclose(col["entropy"], -(p * np.log(p)).sum(1))
    np.testing.assert_array_equal(col["flip"][1:], [0, 1, 1, 0])
    assert np.isnan(col["flip"][0])


def test_flip_tracker_remembers_keys_across_calls_and_forgets_old_ones() -> None:
    ft = FlipTracker(capacity=2)
    assert np.isnan(ft.update("a", np.array([1, 1, 2]))[0])
    np.testing.assert_array_equal(ft.update("a", np.array([3, 3])), [1, 0])  # 2 → 3 across calls
    assert ft.update(None, np.array([1, 2])) is None
    ft.update("b", np.array([0]))
    ft.update("c", np.array([0]))  # evicts "a", the least recently used
    assert np.isnan(ft.update("a", np.array([3]))[0])
    assert len(ft) == 2
