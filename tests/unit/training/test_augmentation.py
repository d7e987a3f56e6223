"""har.training.augmentation: rigid random rotations of both sensors."""

from __future__ import annotations

import numpy as np

from har.training import augmentation


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
