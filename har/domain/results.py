"""Typed results of :class:`har.core.scorer.Scorer`, independent of any transport.

Arrays and small dataclasses: the HTTP JSON (:mod:`har.core.answers`) and the gRPC
messages (:mod:`har.grpc.service`) are each built from these in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from har.domain.preprocessing import Windows
from har.domain.timeline import Timeline


@dataclass(frozen=True)
class Predictions:
    """The model's answer for ``N`` windows.

    Attributes:
        probs: ``(N, n_classes)`` float32 softmax probabilities, card class order.
        class_ids: ``(N,)`` int64 index of the most probable class.
        confidence: ``(N,)`` float32 probability of that class.
        classes: the card's class names (``classes[i]`` names column ``i``).
        calibrated: ``probs`` are the model's temperature-scaled by the card's calibration
            (har/domain/calibration.py), not its raw softmax.
    """

    probs: np.ndarray
    class_ids: np.ndarray
    confidence: np.ndarray
    classes: tuple[str, ...]
    calibrated: bool = False

    @classmethod
    def from_probs(
        cls, probs: np.ndarray, classes: Sequence[str], *, calibrated: bool = False
    ) -> Predictions:
        """Predictions of ``(N, n_classes)`` probabilities."""
        probs = np.asarray(probs, np.float32)
        ids = probs.argmax(axis=1)
        return cls(probs, ids, probs[np.arange(len(ids)), ids], tuple(classes), calibrated)

    def __len__(self) -> int:
        return int(self.probs.shape[0])


@dataclass(frozen=True)
class RecordingResult:
    """A scored recording.

    Attributes:
        windows: its windows (``start_s``/``end_s`` in seconds from the first sample,
            ``segment`` the gap-free stretch each came from, canonical ``values``).
        predictions: one per window.
        timeline: the activity segments drawn from the windows (:mod:`har.domain.timeline`).
    """

    windows: Windows
    predictions: Predictions
    timeline: Timeline


@dataclass(frozen=True)
class StreamResult:
    """Windows of a stream completed by one chunk (or the stream's end), scored.

    Attributes:
        first_index: running number of the first window in the stream (from 0).
        windows: the windows; ``start_s``/``end_s`` in seconds from the stream's first sample.
        predictions: one per window.
    """

    first_index: int
    windows: Windows
    predictions: Predictions

    def __len__(self) -> int:
        return len(self.windows)
