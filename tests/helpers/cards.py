"""The one factory of model cards for tests (canonical units, plausible scaler)."""

from __future__ import annotations

from collections.abc import Sequence

from har.domain.card import ModelCard, Scaler

#: Per-channel mean of canonical input at rest: gravity on acc_z (m/s²).
GRAVITY_MEAN = (0.0, 0.0, 9.8, 0.0, 0.0, 0.0)

#: The classes of the user's 11-class architecture (``har.training.architecture``).
USER_CLASSES = [
    "ear_rubbing",
    "forehead_rubbing",
    "hair_pulling",
    "hand_scratching",
    "hand_tapping",
    "knuckles_cracking",
    "nail_biting",
    "nape_rubbing",
    "sitting",
    "smoking",
    "standing",
]


def make_card(
    classes: Sequence[str] = ("a", "b"),
    *,
    name: str = "test-har",
    window: int = 200,
    hop: int | None = None,
    sample_rate_hz: float = 50,
    mean: Sequence[float] = GRAVITY_MEAN,
    scale: Sequence[float] = (3, 3, 3, 60, 60, 60),
) -> ModelCard:
    """A card for a model with these classes: ``window`` samples at ``sample_rate_hz`` Hz,
    ``hop`` samples between windows (default ``window // 2``), scaler ``mean``/``scale``
    per channel (acc m/s², gyro deg/s)."""
    return ModelCard(
        name=name,
        classes=list(classes),
        window=window,
        hop=window // 2 if hop is None else hop,
        sample_rate_hz=sample_rate_hz,
        scaler=Scaler(mean=list(mean), scale=list(scale)),
    )
