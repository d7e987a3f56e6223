"""The bundled model's reference profile: its training windows as monitoring sees them.

Drift compares what is served against this profile, so it is built from exactly
the windows the model was trained on (the reference subjects, through the shared
preprocessing, in canonical units) and the model's own outputs for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from har.card import ModelCard
from har.inference import CompiledModel
from har.preprocessing import Preprocessor
from har.registry import BUNDLED_CARD, BUNDLED_MODEL, BUNDLED_REFERENCE, load_keras


def write_bundled_reference(
    model_path: Path = BUNDLED_MODEL, card_path: Path = BUNDLED_CARD, out: Path = BUNDLED_REFERENCE
) -> Path:
    """Build the reference profile of the bundled model from its training subjects."""
    from har.dataset import load_watch_dataset, windows_of
    from har.monitoring import build_reference_profile, write_reference_profile

    card = ModelCard.from_file(card_path)
    train_subjects = card.training.get("train_subjects") or card.training.get("subjects")
    ds = load_watch_dataset()
    w = windows_of(ds.recordings, Preprocessor(card))
    if train_subjects:
        w = w.select(np.isin(w.subjects, np.asarray(train_subjects)))
    else:  # the published model never saw the held-out subjects
        from har.dataset import HELDOUT_SUBJECTS

        w = w.select(~np.isin(w.subjects, np.asarray(HELDOUT_SUBJECTS)))
    probs = CompiledModel(load_keras(model_path), xla=False, max_batch_size=256)(
        Preprocessor(card).scale(w.values)
    )
    view = build_reference_profile(
        w.values, probs, classes=card.classes, sequence_ids=np.asarray(w.recording)
    )
    write_reference_profile(view, out)
    return out
