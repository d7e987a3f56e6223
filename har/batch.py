"""Offline batch scoring: ``python -m har predict``, through the service's own code path.

The same :class:`har.serving.Scorer` that answers ``/predict_recording`` runs here,
with the compiled model called in-process instead of through the model service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from har import registry
from har.card import ModelCard
from har.errors import InputError
from har.inference import CompiledModel
from har.recordings import Recording, read_csv_recording, read_garmin_pair
from har.serving import Scorer
from har.settings import get_settings


def load_for_scoring(model_tag: str | None) -> tuple[str, ModelCard, Any]:
    """``(tag, card, keras_model)``: a stored tag, else the bundled model's files."""
    tag = model_tag or get_settings().model_tag
    try:
        loaded = registry.load_model(tag)
        return loaded.tag, loaded.card, loaded.model
    except InputError:
        if model_tag is not None:
            raise
    card = ModelCard.from_file(registry.BUNDLED_CARD)
    model = registry.load_keras(registry.BUNDLED_MODEL)
    registry.validate(model, card)
    return f"{registry.BUNDLED_MODEL.name} (bundled file)", card, model


def read_recording(
    path: Path, gyroscope: Path | None = None, acc_unit: str = "m/s2", gyro_unit: str = "deg/s"
) -> Recording:
    """A canonical CSV, or a Garmin pair when ``gyroscope`` is given."""
    if gyroscope is not None:
        return read_garmin_pair(path, gyroscope, tolerance_s=get_settings().align_tolerance_s)
    return read_csv_recording(path, {"acc": acc_unit, "gyro": gyro_unit})


def score_recording(rec: Recording, tag: str, card: ModelCard, model: Any) -> dict[str, Any]:
    """The ``/predict_recording`` answer for a recording, computed in-process."""
    compiled = CompiledModel(model, xla=False, max_batch_size=256)

    async def infer(x: np.ndarray) -> np.ndarray:
        return compiled(x)

    scorer = Scorer(card, tag, infer, max_fill=get_settings().max_fill_samples)
    return asyncio.run(scorer.predict_recording(rec))


def format_timeline(result: dict[str, Any]) -> str:
    """Human-readable per-window table, segment timeline and summary."""
    w = pd.DataFrame(result["windows"])
    s = pd.DataFrame(result["segments"])
    lines = [f"model: {result['model']}", "", f"windows ({len(w)}):", w.to_string(index=False)]
    lines += ["", f"timeline ({len(s)} segments):", s.to_string(index=False), "", "summary (s):"]
    lines += [f"  {k:>12}: {v:8.1f}" for k, v in result["summary"].items()]
    return "\n".join(lines)


def score_file(
    recording: Path,
    *,
    gyroscope: Path | None = None,
    model_tag: str | None = None,
    acc_unit: str = "m/s2",
    gyro_unit: str = "deg/s",
    out: Path | None = None,
) -> str:
    """Score a recording file; optionally write per-window predictions to ``out`` (CSV)."""
    tag, card, model = load_for_scoring(model_tag)
    rec = read_recording(recording, gyroscope, acc_unit, gyro_unit)
    result = score_recording(rec, tag, card, model)
    if out is not None:
        pd.DataFrame(result["windows"]).to_csv(out, index=False)
    return format_timeline(result)
