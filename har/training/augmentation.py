"""Training-time augmentation of canonical windows: mirroring, rotation, magnitude, time warp.

Applied to training batches only, in canonical units (m/s², deg/s) before the
scaler; the preprocessing that serving shares is untouched.
"""

from __future__ import annotations

import numpy as np

#: Sign flips that turn a window of one arm into the mirror image for the other arm:
#: a reflection across the watch's y-z plane flips acc x and, since angular velocity
#: is a pseudo-vector, gyro y and z. Checked on the data set: the acc/gyro
#: cross-correlations of the two arms' recordings differ by exactly these signs.
MIRROR_SIGNS = np.array([-1, 1, 1, 1, -1, -1], np.float32)


def random_rotations(
    rng: np.random.Generator, n: int, max_deg: float, axis_index: int | None = None
) -> np.ndarray:
    """``(n, 3, 3)`` rotations by angles uniform in ±``max_deg`` about random axes
    (or about coordinate axis ``axis_index``)."""
    axis = rng.normal(size=(n, 3))
    if axis_index is not None:
        axis = np.zeros((n, 3))
        axis[:, axis_index] = 1.0
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg, size=n))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(0, 2, 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    rotations: np.ndarray = np.eye(3) + s * k + (1 - c) * (k @ k)  # Rodrigues' formula
    return rotations


def augment(
    windows: np.ndarray,
    rng: np.random.Generator,
    rotation_deg: float,
    magnitude_jitter: float,
    mirror_probability: float = 0.0,
    time_warp: float = 0.0,
    rotation_axis: int | None = None,
) -> np.ndarray:
    """Mirror, rotate and scale canonical windows ``(N, window, 6)`` (training time only).

    A window is mirrored to the other arm with ``mirror_probability``
    (:data:`MIRROR_SIGNS`). The same rotation turns the accelerometer and the
    gyroscope vector of a window (both sensors sit in one rigid watch); the
    magnitude factor applies to all channels.

    Returns:
        ``(N, window, 6)`` float32, canonical units.
    """
    n = int(windows.shape[0])
    if mirror_probability > 0:
        flip = rng.random(n) < mirror_probability
        windows = np.where(flip[:, None, None], windows * MIRROR_SIGNS, windows)
    if time_warp > 0:
        windows = warp_time(windows, np.exp(rng.uniform(-1, 1, n) * np.log1p(time_warp)))
    r = random_rotations(rng, n, rotation_deg, rotation_axis).astype(np.float32)
    f = rng.uniform(1 - magnitude_jitter, 1 + magnitude_jitter, size=(n, 1, 1)).astype(np.float32)
    acc = np.einsum("nij,ntj->nti", r, windows[..., :3])
    gyro = np.einsum("nij,ntj->nti", r, windows[..., 3:])
    return (np.concatenate([acc, gyro], axis=-1) * f).astype(np.float32)


def warp_time(windows: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Resample each window ``(N, T, C)`` about its centre: factor ``> 1`` plays it faster.

    Sample ``t`` of window ``n`` takes the value at ``c + (t - c) * factors[n]``
    (``c`` the centre), linearly interpolated; positions past the ends take the edge.
    """
    n, t, _ = windows.shape
    c = (t - 1) / 2.0
    pos = np.clip(c + (np.arange(t)[None, :] - c) * factors[:, None], 0, t - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, t - 1)
    w = (pos - i0)[..., None].astype(np.float32)
    rows = np.arange(n)[:, None]
    warped: np.ndarray = windows[rows, i0] * (1 - w) + windows[rows, i1] * w
    return warped
