"""The HTTP JSON built from typed results: field names, order, rounding."""

from __future__ import annotations

import json

import numpy as np

from har.core import answers
from har.domain.preprocessing import Windows
from har.domain.results import Predictions, RecordingResult
from har.domain.timeline import timeline_of

CLASSES = ["PEN", "ABD"]


def test_predict_answer_names_classes_and_rounds_probabilities() -> None:
    preds = Predictions.from_probs(np.array([[0.123456789, 0.876543211]]), CLASSES)
    body = answers.predict_answer("m:1", preds)
    assert body == {
        "model": "m:1",
        "predictions": [
            {
                "activity": "ABD",
                "activity_id": 1,
                "confidence": float(np.float32(0.876543211)),
                "probabilities": {"PEN": 0.123457, "ABD": 0.876543},
            }
        ],
        "calibrated": False,
    }
    calibrated = Predictions.from_probs(np.array([[0.4, 0.6]]), CLASSES, calibrated=True)
    assert answers.predict_answer("m:1", calibrated)["calibrated"] is True
    json.dumps(body)  # plain Python types only


def test_recording_answer_lists_windows_segments_summary_and_smoothing() -> None:
    w = Windows(np.zeros((2, 200, 6), np.float32), np.array([0.0, 2.0004]), np.array([0, 0]), 50.0)
    preds = Predictions.from_probs(np.array([[0.9, 0.1], [0.2, 0.8]]), CLASSES)
    timeline = timeline_of(w, preds.probs, CLASSES, smoothing="none")
    body = answers.recording_answer("m:1", RecordingResult(w, preds, timeline))
    assert list(body) == ["model", "windows", "segments", "summary", "smoothing", "calibrated"]
    assert body["smoothing"] == "none"
    assert body["windows"] == [
        {"start": 0.0, "end": 4.0, "activity": "PEN", "confidence": 0.9},
        {"start": 2.0, "end": 6.0, "activity": "ABD", "confidence": 0.8},
    ]
    # segments tile time: the boundary is the middle of the windows' overlap (2-4 s),
    # the last segment ends at the last window's last sample (one 50 Hz period early)
    assert body["segments"] == [
        {"start": 0.0, "end": 3.0, "activity": "PEN", "confidence": 0.9, "windows": 1},
        {"start": 3.0, "end": 5.98, "activity": "ABD", "confidence": 0.8, "windows": 1},
    ]
    assert body["summary"] == {"PEN": 3.0, "ABD": 2.98}
    assert list(body["summary"]) == ["PEN", "ABD"]  # most seconds first
    json.dumps(body)  # plain Python types only


def test_error_answer_is_the_one_error_body_in_both_serialisations() -> None:
    from har.core.answers import error_answer, error_answer_bytes

    assert error_answer("bad") == {"error": "bad"}
    # the raw ASGI middlewares' bytes (json.dumps), as they were before the builder
    assert error_answer_bytes("bad é") == b'{"error": "bad \\u00e9"}'
    # compact: what Starlette's JSONResponse renders, as the BentoML endpoints answered
    from starlette.responses import JSONResponse

    assert error_answer_bytes("bad é", compact=True) == JSONResponse(error_answer("bad é")).body
    assert error_answer_bytes("bad é", compact=True) == '{"error":"bad é"}'.encode()
