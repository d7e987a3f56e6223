"""The JSON answers of the HTTP API, built from the core's typed results (:mod:`har.domain.results`).

``POST /predict``, ``POST /predict_recording``, ``GET /model`` and offline scoring
(``python -m har predict``) answer with these, so every JSON surface names classes,
confidences and segments the same way. Probabilities are rounded to 6 decimals,
times to 3 (milliseconds).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from har.domain.card import ModelCard
from har.domain.results import Predictions, RecordingResult

JSON = dict[str, Any]


def error_answer(message: str) -> JSON:
    """The body of every HTTP error answer (4xx and 5xx): ``{"error": message}``."""
    return {"error": message}


def error_answer_bytes(message: str, *, compact: bool = False) -> bytes:
    """:func:`error_answer` serialised: by default as the raw ASGI middlewares and the ``/v2``
    routes send it, ``json.dumps``'s default (ASCII, ``", "`` and ``": "`` separators);
    ``compact``: as Starlette's ``JSONResponse`` renders it (UTF-8, no spaces), the form of
    BentoML's endpoints and the read-only routes."""
    if compact:
        return json.dumps(
            error_answer(message), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
    return json.dumps(error_answer(message)).encode()


def prediction_objects(preds: Predictions) -> list[JSON]:
    """One ``{"activity", "activity_id", "confidence", "probabilities": {class: p}}`` per window."""
    classes = preds.classes
    rounded = np.round(preds.probs.astype(np.float64), 6).tolist()
    return [
        {
            "activity": classes[i],
            "activity_id": int(i),
            "confidence": float(c),
            "probabilities": dict(zip(classes, row, strict=True)),
        }
        for i, c, row in zip(
            preds.class_ids.tolist(), preds.confidence.tolist(), rounded, strict=True
        )
    ]


def predict_answer(tag: str, preds: Predictions) -> JSON:
    """``POST /predict``: ``{"model": tag, "predictions": [...], "calibrated": bool}`` in request
    order; ``calibrated``: probabilities and confidences are temperature-scaled (the card's
    ``calibration``), not the model's raw softmax."""
    return {
        "model": tag,
        "predictions": prediction_objects(preds),
        "calibrated": preds.calibrated,
    }


def recording_answer(tag: str, result: RecordingResult) -> JSON:
    """``POST /predict_recording``: ``{"model", "windows", "segments", "summary", "smoothing",
    "calibrated"}``.

    Times are seconds from the recording's first sample. ``windows`` carry each
    window's raw prediction; ``segments`` tile time (:mod:`har.domain.timeline`: no overlap,
    never across a gap) after the ``smoothing`` named; ``summary`` is seconds per
    activity, largest first.
    """
    w, preds = result.windows, result.predictions
    conf = preds.confidence.astype(np.float64)
    windows = [
        {
            "start": round(float(s), 3),
            "end": round(float(e), 3),
            "activity": preds.classes[i],
            "confidence": round(float(c), 6),
        }
        for s, e, i, c in zip(
            w.start_s.tolist(),
            w.end_s.tolist(),
            preds.class_ids.tolist(),
            conf.tolist(),
            strict=True,
        )
    ]
    timeline = result.timeline
    return {
        "model": tag,
        "windows": windows,
        "segments": timeline.as_dicts(),
        "summary": timeline.summary,
        "smoothing": timeline.smoothing,
        "calibrated": preds.calibrated,
    }


def model_answer(tag: str, card: ModelCard) -> JSON:
    """``GET /model``: ``{"tag", "card"}``."""
    return {"tag": tag, "card": card.model_dump(mode="json")}
