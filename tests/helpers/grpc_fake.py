"""A fake model behind a real :class:`har.core.scorer.Scorer` and a real in-process
``grpc.aio`` server, for the gRPC tests (tests/service/test_grpc*.py).

The model is deterministic (class probabilities computed from the scaled input) on a
small synthetic card, so these tests need neither TensorFlow nor the trained model.
pytest-asyncio is not a dependency: each test runs its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import numpy as np
import pytest

from har.core.scorer import Scorer
from har.grpc.service import start_grpc_server, stop_grpc_server
from har.v1 import har_pb2
from tests.helpers.cards import make_card
from tests.helpers.signals import synthetic_recording

TAG = "test-har:fake"
CARD = make_card(["PEN", "ABD", "FEL", "IR"], window=40, scale=(3, 3, 3, 40, 40, 40))
GRAVITY = np.array([0.0, 0.0, 9.8, 0.0, 0.0, 0.0])  # on acc_z, m/s²
_W = np.random.default_rng(7).normal(size=(12, len(CARD.classes))).astype(np.float32)


def fake_probs(scaled: np.ndarray) -> np.ndarray:
    """``(N, window, 6)`` scaled windows -> ``(N, n_classes)`` softmax of a fixed map."""
    feats = np.concatenate([scaled.mean(axis=1), scaled.std(axis=1)], axis=1)
    logits = feats @ _W
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


async def fake_infer(scaled: np.ndarray) -> np.ndarray:
    return fake_probs(scaled)


class Recorder:
    """A monitor that keeps what it observed."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None]] = []

    def observe(
        self, windows: np.ndarray, probs: np.ndarray, *, sequence_key: str | None = None
    ) -> None:
        self.calls.append((len(windows), sequence_key))


Scenario = Callable[[grpc.aio.Channel], Awaitable[None]]


def serve(scenario: Scenario, scorer: Scorer | None = None) -> None:
    """Start the server on an ephemeral port, run ``scenario`` on a channel to it, stop."""

    async def main() -> None:
        handle = await start_grpc_server(
            scorer or Scorer(CARD, TAG, fake_infer), "127.0.0.1", 0, max_message_bytes=8 << 20
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                await scenario(channel)
        finally:
            await stop_grpc_server(handle, grace=0.5)

    asyncio.run(main())


def windows(n: int, seed: int = 0) -> np.ndarray:
    """``(n, window, 6)`` canonical windows (m/s², deg/s)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, [3, 3, 3, 50, 50, 50], (n, CARD.window, 6))
    return (w + GRAVITY).astype(np.float32)


def request(w: np.ndarray, **units: str) -> har_pb2.PredictRequest:
    msgs = [har_pb2.Window(values=x.ravel().tolist()) for x in w]
    if units:
        return har_pb2.PredictRequest(windows=msgs, units=har_pb2.Units(**units))
    return har_pb2.PredictRequest(windows=msgs)


def recording(rate_hz: float, seconds: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Unix-time stamps and ``(n, 6)`` canonical values, rounded to float32 as on the wire."""
    t0 = 1_700_000_000.0
    return synthetic_recording(rate_hz, seconds, t0=t0, seed=seed, gyro_gain=20, float32=True)


def chunks(
    t: np.ndarray, v: np.ndarray, seed: int | None, units: har_pb2.Units | None = None
) -> list[har_pb2.SensorChunk]:
    """Split into chunks of random sizes 1..97 (cutting windows anywhere), or one chunk
    if ``seed`` is None; units on chunk 0 only."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(t):
        k = len(t) if seed is None else int(rng.integers(1, 98))
        c = har_pb2.SensorChunk(timestamps=t[i : i + k].tolist(), values=v[i : i + k].ravel())
        if units is not None and not out:
            c.units.CopyFrom(units)
        out.append(c)
        i += k
    return out


async def expect_invalid(call: Awaitable[object], *fragments: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for f in fragments:
        assert f in info.value.details()


async def collect(call) -> list:
    """Every reply of a response stream."""
    return [m async for m in call]
