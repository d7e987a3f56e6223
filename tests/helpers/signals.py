"""The one generator of synthetic IMU recordings for tests."""

from __future__ import annotations

import numpy as np

#: Frequencies (Hz) of the six channels' sines.
FREQS = (0.3, 1.3, 2.1, 3.7, 7.9, 11.0)


def synthetic_recording(
    rate_hz: float,
    seconds: float,
    *,
    t0: float = 100.0,
    jitter_s: float = 0.0,
    gaps: tuple[tuple[float, float], ...] = (),
    seed: int = 0,
    gyro_gain: float = 1.0,
    float32: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic wrist-IMU recording in canonical units.

    Returns ``(n,)`` timestamps in seconds from ``t0`` (``± jitter_s`` uniform jitter) and
    ``(n, 6)`` values: sines of :data:`FREQS` with amplitude 3 (times ``gyro_gain`` on the
    gyroscope channels), Gaussian noise (σ 0.5), gravity 9.8 m/s² on acc_z. ``gaps`` are
    ``(from, to)`` stretches in seconds after ``t0`` that are dropped. ``float32``: values
    rounded to float32 (as they travel on the gRPC wire), returned as float64.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz)
    rel = np.arange(n) / rate_hz
    t = t0 + rel + rng.uniform(-jitter_s, jitter_s, n)
    v = 3.0 * np.sin(2 * np.pi * np.outer(rel, FREQS) + rng.uniform(0, 6, 6))
    v *= np.array([1, 1, 1, gyro_gain, gyro_gain, gyro_gain])
    v += rng.normal(0, 0.5, (n, 6)) + np.array([0, 0, 9.8, 0, 0, 0])
    if float32:
        v = v.astype(np.float32).astype(np.float64)
    keep = np.ones(n, bool)
    for a, b in gaps:
        keep &= (rel < a) | (rel >= b)
    return t[keep], v[keep]
