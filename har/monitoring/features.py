"""Per-window feature rows: what monitoring keeps of every served window.

A served window (``window`` samples × 6 channels, canonical units: m/s² and
deg/s, *before* the model's scaler) and its softmax output become one row of
plain numbers. Rows are computed with numpy for many windows at once by the
monitor's writer thread (in the API worker's process, so it must stay cheap:
~10 µs per window in chunks), and this module must not import whylogs.

Columns (``F = 4 * channels + 2 + 4``):

* ``<channel>_mean|_std|_min|_max`` for ``acc_x .. gyro_z`` (m/s² or deg/s);
* ``acc_mag_mean`` (m/s²) and ``gyro_mag_mean`` (deg/s): mean over the window
  of the Euclidean norm of the three axes;
* ``pred_class``: argmax of the probabilities (an integer class id, stored as
  float in the row array and logged as int64 — whylogs breaks on strings with
  numpy 2);
* ``confidence``: the largest probability, 0..1;
* ``entropy``: Shannon entropy of the probabilities in nats, 0..ln(n_classes);
* ``flip``: 1.0 when the predicted class differs from the previous window of
  the same sequence, 0.0 when it does not, NaN when there is no previous window.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import cast

import numpy as np

from har.domain.card import CANONICAL_CHANNELS

STATS: tuple[str, ...] = ("mean", "std", "min", "max")
MAGNITUDES: tuple[str, ...] = ("acc_mag_mean", "gyro_mag_mean")
PRED_CLASS = "pred_class"
CONFIDENCE = "confidence"
ENTROPY = "entropy"
FLIP = "flip"
OUTPUTS: tuple[str, ...] = (PRED_CLASS, CONFIDENCE, ENTROPY, FLIP)


def input_feature_names(channels: Sequence[str] = CANONICAL_CHANNELS) -> list[str]:
    """Names of the input features (the ones compared for drift), in row order."""
    return [f"{ch}_{s}" for ch in channels for s in STATS] + list(MAGNITUDES)


def feature_names(channels: Sequence[str] = CANONICAL_CHANNELS) -> list[str]:
    """All row columns in order: input features, then :data:`OUTPUTS`."""
    return [*input_feature_names(channels), *OUTPUTS]


def feature_rows(windows: np.ndarray, probs: np.ndarray, flips: np.ndarray | None) -> np.ndarray:
    """One feature row per window.

    Args:
        windows: ``(N, window, 6)`` samples in canonical units (m/s², deg/s), unscaled;
            channels ``acc_x acc_y acc_z gyro_x gyro_y gyro_z``.
        probs: ``(N, n_classes)`` softmax output for those windows.
        flips: ``(N,)`` 0/1/NaN from :class:`FlipTracker`, or ``None`` (all NaN).

    Returns:
        ``(N, F)`` float64 in the column order of :func:`feature_names`.
    """
    w = np.asarray(windows)
    p = np.asarray(probs, dtype=np.float64)
    n, c = w.shape[0], w.shape[2]
    out = np.empty((n, 4 * c + len(MAGNITUDES) + len(OUTPUTS)), dtype=np.float64)
    # Chunks keep the float64 temporaries in cache (~10 µs per window instead of ~60
    # for thousands of windows at once).
    for start in range(0, n, CHUNK):
        _input_features(w[start : start + CHUNK], out[start : start + CHUNK])
    k = 4 * c + len(MAGNITUDES)
    out[:, k] = p.argmax(axis=1)
    out[:, k + 1] = p.max(axis=1)
    out[:, k + 2] = entropy(p)
    out[:, k + 3] = np.nan if flips is None else flips
    return out


#: Windows per chunk in :func:`feature_rows`.
CHUNK = 256


def _input_features(windows: np.ndarray, out: np.ndarray) -> None:
    """Channel statistics and magnitudes of ``(n, T, C)`` windows into ``out[:, :4C+2]``."""
    # (n, C, T) float64, contiguous along time: one pass per reduction, no float32
    # cancellation in the variance of a channel that carries gravity (~9.8 m/s²).
    x = np.ascontiguousarray(windows.transpose(0, 2, 1), dtype=np.float64)
    _, c, t = x.shape
    sq = x * x
    mean = x.sum(axis=2) / t
    # Column 4 * ch + s holds statistic s (mean, std, min, max) of channel ch.
    out[:, 0 : 4 * c : 4] = mean
    out[:, 1 : 4 * c : 4] = np.sqrt(np.maximum(sq.sum(axis=2) / t - mean * mean, 0.0))
    out[:, 2 : 4 * c : 4] = x.min(axis=2)
    out[:, 3 : 4 * c : 4] = x.max(axis=2)
    out[:, 4 * c] = np.sqrt(sq[:, 0:3].sum(axis=1)).mean(axis=1)
    out[:, 4 * c + 1] = np.sqrt(sq[:, 3:6].sum(axis=1)).mean(axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``(N, n_classes)`` probabilities → ``(N,)``."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return cast(np.ndarray, -(p * np.log(p)).sum(axis=1))


class FlipTracker:
    """Whether the predicted class changed from one window to the next, per sequence.

    A sequence (a recording, or one sensor stream) may arrive over many calls;
    the last predicted class of each of the ``capacity`` most recently seen
    sequence keys is kept (least recently used keys are forgotten).

    Thread-safe: one call updates a key atomically.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._last: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._last)

    def update(self, key: str | None, pred: np.ndarray) -> np.ndarray | None:
        """Flips of ``pred`` (``(N,)`` int class ids, consecutive in time) → ``(N,)`` float.

        Returns ``None`` (no flip value for any window) when ``key`` is ``None``.
        Element 0 compares with the key's previous call (NaN for a new key).
        """
        if key is None or pred.shape[0] == 0:
            return None
        flips = np.empty(pred.shape[0], dtype=np.float64)
        flips[1:] = pred[1:] != pred[:-1]
        with self._lock:
            prev = self._last.pop(key, None)
            self._last[key] = int(pred[-1])
            if len(self._last) > self.capacity:
                self._last.popitem(last=False)
        flips[0] = np.nan if prev is None else float(prev != pred[0])
        return flips
