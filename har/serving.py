"""The transport-agnostic core of the service, shared by HTTP and gRPC.

:class:`Scorer` validates client input, converts units, applies the card's
scaler, awaits the (batched) model, feeds monitoring and formats the answer.
``service.py`` and :mod:`har.grpc_service` only translate requests and errors.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import numpy as np

from har import scoring
from har.card import ModelCard, Units
from har.errors import InputError
from har.preprocessing import Preprocessor, Windows
from har.recordings import Recording

Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]


class Observer(Protocol):
    """What the scorer needs from monitoring (``har.monitoring.Monitor``)."""

    def observe(
        self, windows: np.ndarray, probs: np.ndarray, *, sequence_key: str | None = None
    ) -> None: ...


class Scorer:
    """Turns client windows or recordings into predictions through the batched model.

    Args:
        card: the served model's card.
        tag: the served model's tag (echoed in every answer).
        infer: async ``(N, window, 6) float32 scaled -> (N, n_classes)`` probabilities.
        monitor: optional observer of every served window (canonical units) and its output.
        max_windows: most windows accepted in one request.
        max_fill: gaps of at most this many samples are interpolated, longer ones split.
    """

    def __init__(
        self,
        card: ModelCard,
        tag: str,
        infer: Infer,
        *,
        monitor: Observer | None = None,
        max_windows: int = 4096,
        max_fill: int = 2,
    ) -> None:
        self.card = card
        self.tag = tag
        self.infer = infer
        self.monitor = monitor
        self.max_windows = max_windows
        self.pre = Preprocessor(card, max_fill=max_fill)

    async def probabilities(
        self, canonical: np.ndarray, *, sequence_key: str | None = None
    ) -> np.ndarray:
        """Scale canonical windows, run the model, record them for monitoring."""
        probs = np.asarray(await self.infer(self.pre.scale(canonical)), np.float32)
        if self.monitor is not None:
            self.monitor.observe(canonical, probs, sequence_key=sequence_key)
        return probs

    def check_windows(self, windows: Any, units: Units | dict | None) -> np.ndarray:
        """Validated windows in canonical units (``InputError`` otherwise)."""
        n = len(windows) if isinstance(windows, list | tuple | np.ndarray) else None
        if n is not None and n > self.max_windows:
            raise InputError(
                f"too many windows in one request: {n} (at most {self.max_windows}); "
                "split the request or use /predict_recording"
            )
        return self.pre.check_windows(windows, units)

    async def predict(self, windows: Any, units: Units | dict | None = None) -> dict[str, Any]:
        """``POST /predict``: one prediction per window, in request order."""
        canonical = self.check_windows(windows, units)
        probs = await self.probabilities(canonical)
        return {"model": self.tag, "predictions": scoring.predictions(probs, self.card.classes)}

    async def recording_windows(self, rec: Recording) -> tuple[Windows, np.ndarray]:
        """Windows of a recording and their probabilities."""
        w = self.pre.windows(rec.time, rec.values)
        if len(w) > self.max_windows * 16:
            raise InputError(
                f"recording too long: {len(w)} windows (at most {self.max_windows * 16})"
            )
        # a fresh key per recording: its windows are consecutive, unrelated to any other
        probs = await self.probabilities(w.values, sequence_key=f"rec-{uuid.uuid4().hex}")
        return w, probs

    async def predict_recording(self, rec: Recording) -> dict[str, Any]:
        """``POST /predict_recording``: windows, segments and seconds per activity."""
        w, probs = await self.recording_windows(rec)
        return {"model": self.tag, **scoring.timeline(w, probs, self.card)}

    def model_info(self) -> dict[str, Any]:
        """``GET /model``: tag and card."""
        return {"tag": self.tag, "card": self.card.model_dump(mode="json")}
