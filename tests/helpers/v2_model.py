"""A small :class:`~har.core.open_inference.InferenceModel` for the V2 protocol's unit tests:
a 3-class card with windows of 20 samples, a deterministic fake model, a recording monitor."""

from __future__ import annotations

import numpy as np

from har.core.open_inference import InferenceModel
from har.core.scorer import Scorer
from tests.helpers.cards import make_card

CARD = make_card(["a", "b", "c"], name="t", window=20, sample_rate_hz=10)
TAG = "t:v1"


async def fake_infer(scaled: np.ndarray) -> np.ndarray:
    """Softmax of the per-channel means of the first three (scaled) channels."""
    logits = scaled.mean(axis=1)[:, :3]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Recorder:
    """Counts the windows monitoring saw."""

    def __init__(self) -> None:
        self.windows = 0

    def observe(self, windows, probs, *, sequence_key=None) -> None:
        self.windows += len(windows)


def v2_model(max_windows: int = 8, ready: bool = True) -> tuple[InferenceModel, Recorder]:
    """The model and the recorder its scorer reports every scored window to."""
    monitor = Recorder()
    scorer = Scorer(CARD, TAG, fake_infer, monitor=monitor, max_windows=max_windows)

    async def is_ready() -> bool:
        return ready

    return InferenceModel(scorer, is_ready), monitor


def windows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` canonical windows ``(n, 20, 6)`` float32 of the test card."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, CARD.window, 6)).astype(np.float32)
    w[..., 2] += 9.8
    return w
