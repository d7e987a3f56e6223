"""The naive baseline: one FastAPI process that calls ``model.predict`` once per request.

This is the common thesis-style design the benchmark compares the BentoML service
against (``python -m load_tests.bench`` starts it; it is not part of the product). It
does what a correct minimal app does — loads the same ``.keras`` file, applies the
model card's scaler, answers ``POST /predict`` with the same JSON body as the real
service (``{"windows": N x window x 6}``, canonical units) — and nothing more: no
batching across requests, no compiled function, TensorFlow's default threading, a
plain ``def`` endpoint (FastAPI runs it in its thread pool).

Run by hand::

    .venv/bin/python load_tests/naive_baseline/app.py --model M.keras --card card.json --port 8000
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class PredictBody(BaseModel):
    """``POST /predict`` body: windows of ``window`` samples x 6 channels (m/s², deg/s)."""

    windows: list[list[list[float]]]


def create_app(model_path: Path, card_path: Path) -> FastAPI:
    """A FastAPI app serving ``model_path`` scaled with the scaler of ``card_path``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    card = json.loads(card_path.read_text())
    classes: list[str] = card["classes"]
    mean = np.asarray(card["scaler"]["mean"], np.float32)
    scale = np.asarray(card["scaler"]["scale"], np.float32)
    app = FastAPI(title="naive HAR baseline")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: PredictBody) -> dict[str, Any]:
        x = np.asarray(body.windows, np.float32)
        if x.ndim != 3 or x.shape[1:] != tuple(model.input_shape[1:]):
            raise HTTPException(400, f"windows must have shape (N, 200, 6), got {x.shape}")
        probs = model.predict((x - mean) / scale, verbose=0)
        return {
            "predictions": [
                {
                    "activity": classes[int(p.argmax())],
                    "activity_id": int(p.argmax()),
                    "confidence": float(p.max()),
                    "probabilities": dict(zip(classes, map(float, p), strict=True)),
                }
                for p in probs
            ]
        }

    return app


def main() -> None:
    """Parse ``--model --card --port`` and serve with uvicorn (one worker)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help=".keras file")
    parser.add_argument("--card", type=Path, required=True, help="the model's card.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    app = create_app(args.model, args.card)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning")


if __name__ == "__main__":
    main()
