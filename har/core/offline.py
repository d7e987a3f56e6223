"""Offline scoring of recording files: ``python -m har predict``, through the service's code path.

The same :class:`har.core.scorer.Scorer` that answers ``/predict_recording`` runs here,
with the compiled model called in-process instead of through the model service,
and the answer is the endpoint's JSON (:func:`har.core.answers.recording_answer`).
Settings are passed in by the caller (the command line).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from har.core import answers
from har.core.scorer import Scorer
from har.domain.card import CANONICAL_UNITS, ModelCard, Units
from har.domain.errors import InputError
from har.domain.recordings import Recording, read_csv_recording, read_garmin_pair
from har.domain.timeline import TimelineOptions
from har.runtime import model_store
from har.runtime.inference import CompiledModel
from har.settings import Settings


def load_for_scoring(model_tag: str | None, default_tag: str) -> tuple[str, ModelCard, Any]:
    """``(tag, card, keras_model)``: ``model_tag`` (else ``default_tag``) from the store;
    the bundled model's files when no tag was asked for and the default is not stored."""
    try:
        loaded = model_store.load_model(model_tag or default_tag)
        return loaded.tag, loaded.card, loaded.model
    except InputError:
        if model_tag is not None:
            raise
    card = ModelCard.from_file(model_store.BUNDLED_CARD)
    model = model_store.load_keras(model_store.BUNDLED_MODEL)
    model_store.validate(model, card)
    return f"{model_store.BUNDLED_MODEL.name} (bundled file)", card, model


def read_recording(
    path: Path,
    gyroscope: Path | None = None,
    units: Units = CANONICAL_UNITS,
    *,
    align_tolerance_s: float,
) -> Recording:
    """A canonical CSV in ``units``, or a Garmin pair when ``gyroscope`` is given."""
    if gyroscope is not None:
        return read_garmin_pair(path, gyroscope, tolerance_s=align_tolerance_s)
    return read_csv_recording(path, units)


def in_process_scorer(
    card: ModelCard,
    tag: str,
    model: Any,
    *,
    max_fill: int,
    timeline: TimelineOptions | None = None,
) -> Scorer:
    """A :class:`Scorer` whose model is ``model`` compiled in this process (no XLA, batches
    of at most 256 windows) instead of called through the model service."""
    compiled = CompiledModel(model, xla=False, max_batch_size=256)

    async def infer(x: np.ndarray) -> np.ndarray:
        return compiled(x)

    return Scorer(card, tag, infer, max_fill=max_fill, timeline=timeline)


def score_recording(
    rec: Recording,
    tag: str,
    card: ModelCard,
    model: Any,
    *,
    max_fill: int,
    timeline: TimelineOptions | None = None,
    smoothing: str | None = None,
) -> dict[str, Any]:
    """The ``/predict_recording`` answer for a recording, computed in-process.

    Args:
        timeline: the default timeline options (the service's come from its settings).
        smoothing: this recording's method, as the endpoint's ``smoothing`` field.
    """
    scorer = in_process_scorer(card, tag, model, max_fill=max_fill, timeline=timeline)
    return answers.recording_answer(tag, asyncio.run(scorer.predict_recording(rec, smoothing)))


def format_timeline(result: dict[str, Any]) -> str:
    """Human-readable per-window table, segment timeline and summary."""
    w = pd.DataFrame(result["windows"])
    s = pd.DataFrame(result["segments"])
    lines = [f"model: {result['model']}", "", f"windows ({len(w)}):", w.to_string(index=False)]
    title = f"timeline ({len(s)} segments, smoothing {result['smoothing']}):"
    lines += ["", title, s.to_string(index=False), "", "summary (s):"]
    lines += [f"  {k:>12}: {v:8.1f}" for k, v in result["summary"].items()]
    return "\n".join(lines)


def score_file(
    recording: Path,
    settings: Settings,
    *,
    gyroscope: Path | None = None,
    model_tag: str | None = None,
    units: Units = CANONICAL_UNITS,
    out: Path | None = None,
    smoothing: str | None = None,
) -> str:
    """Score a recording file; optionally write per-window predictions to ``out`` (CSV).

    Args:
        settings: supplies the default model tag, the Garmin alignment tolerance,
            the longest gap that is interpolated and the timeline options.
        smoothing: the timeline's method (default: ``settings.smoothing``).
    """
    tag, card, model = load_for_scoring(model_tag, settings.model_tag)
    rec = read_recording(recording, gyroscope, units, align_tolerance_s=settings.align_tolerance_s)
    result = score_recording(
        rec,
        tag,
        card,
        model,
        max_fill=settings.max_fill_samples,
        timeline=TimelineOptions.from_settings(settings),
        smoothing=smoothing,
    )
    if out is not None:
        pd.DataFrame(result["windows"]).to_csv(out, index=False)
    return format_timeline(result)
