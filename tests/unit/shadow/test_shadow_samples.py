"""The shadow's disagreements handed to the windows kept for labelling (har/shadow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from har.domain.calibration import apply_temperature
from har.domain.preprocessing import Preprocessor
from har.shadow import keep_disagreements
from tests.helpers.cards import make_card

CARD = make_card(
    ["a", "b", "c"], name="t", window=20, sample_rate_hz=10, scale=(2, 2, 2, 30, 30, 30)
)
SHADOW = make_card(["c", "b", "a"], name="s", window=20, sample_rate_hz=10)


class Taken:
    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def offer_disagreement(self, canonical, probs, shadow_classes) -> int:
        self.calls.append((canonical, probs, shadow_classes))
        return 0


def test_disagreements_get_canonical_windows_calibrated_output_and_shadow_names() -> None:
    taken = Taken()
    scorer = SimpleNamespace(card=CARD, temperature=2.0, sampler=taken)
    on_compared = keep_disagreements(scorer, SHADOW)
    canonical = np.random.default_rng(0).normal(size=(3, 20, 6)).astype(np.float32) * 9.8
    scaled = Preprocessor(CARD).scale(canonical)
    primary = np.array([[0.7, 0.2, 0.1]] * 3, np.float32)
    shadow = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], np.float32)
    on_compared(scaled, primary, shadow)
    ((got_windows, got_probs, got_names),) = taken.calls
    np.testing.assert_allclose(got_windows, canonical, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got_probs, apply_temperature(primary, 2.0))
    assert got_names.tolist() == ["c", "b", "a"]  # by the shadow card's own class order
