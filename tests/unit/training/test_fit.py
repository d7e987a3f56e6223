"""har.training.fit: the scaler fitted to training windows."""

from __future__ import annotations

import numpy as np

from har.training import fit


def test_fit_scaler_is_per_channel_over_all_samples():
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(7, 20, 6)) * [1, 2, 3, 4, 5, 6] + [0, 0, 9.8, 0, 0, 0]).astype(np.float32)
    s = fit.fit_scaler(w)
    np.testing.assert_allclose(s.mean, w.reshape(-1, 6).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.scale, w.reshape(-1, 6).std(0), rtol=1e-5)
