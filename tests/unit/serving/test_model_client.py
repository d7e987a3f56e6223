"""ModelClient: routing by size, coalescing of concurrent small calls, one retry; model_ready."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest

from har.domain.errors import ModelUnavailableError
from har.serving.model_client import ModelClient, model_ready
from har.settings import Settings


class FakeModel:
    """Two methods that record the rows of each call and return ``x[:, 0, :2]``."""

    def __init__(self, fail_first: list[BaseException] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = list(fail_first or [])

    def method(self, name: str):
        async def call(x: np.ndarray) -> np.ndarray:
            self.calls.append((name, len(x)))
            await asyncio.sleep(0.005)
            if self.fail:
                raise self.fail.pop(0)
            return x[:, 0, :2].copy()

        return call

    def client(self, **kw: object) -> ModelClient:
        kw.setdefault("max_batch_size", 4)
        kw.setdefault("coalesce_inflight", 0)
        kw.setdefault("coalesce_fill", Settings().coalesce_fill)
        return ModelClient(self.method("batched"), self.method("unbatched"), **kw)


def rows(n: int, first: int = 0) -> np.ndarray:
    return np.arange(first, first + n, dtype=np.float32)[:, None, None] * np.ones((1, 3, 6))


def test_inputs_up_to_max_batch_size_go_to_the_batched_method_larger_ones_unbatched() -> None:
    model = FakeModel()
    client = model.client(coalesce_inflight=0)

    async def main() -> None:
        np.testing.assert_array_equal(await client(rows(4)), rows(4)[:, 0, :2])
        np.testing.assert_array_equal(await client(rows(5)), rows(5)[:, 0, :2])
        await client(rows(1))

    asyncio.run(main())
    assert model.calls == [("batched", 4), ("unbatched", 5), ("batched", 1)]


def test_concurrent_small_calls_are_coalesced_and_answered_in_order() -> None:
    model = FakeModel()
    client = model.client(coalesce_inflight=1)
    inputs = [rows(1 + i % 2, first=10 * i) for i in range(12)]

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(client(x) for x in inputs))

    outs = asyncio.run(main())
    for x, out in zip(inputs, outs, strict=True):
        np.testing.assert_array_equal(out, x[:, 0, :2])
    sizes = [n for name, n in model.calls]
    assert {name for name, _ in model.calls} == {"batched"}
    assert len(sizes) < len(inputs) and max(sizes) <= 4 and sum(sizes) == 18


@pytest.mark.parametrize("route", [1, 9], ids=["batched", "unbatched"])
def test_a_dropped_connection_is_retried_once(route: int, caplog) -> None:
    model = FakeModel(fail_first=[aiohttp.ServerDisconnectedError()])
    with caplog.at_level("WARNING", logger="har.serving.model_client"):
        out = asyncio.run(model.client(coalesce_inflight=2)(rows(route)))
    np.testing.assert_array_equal(out, rows(route)[:, 0, :2])
    assert len(model.calls) == 2
    # counted: each retry is one WARNING (load_tests/reliability/mixed.py counts them)
    assert [r.getMessage() for r in caplog.records] == [
        "model call retried once after ServerDisconnectedError"
    ]


def test_a_second_connection_error_or_any_other_error_propagates() -> None:
    twice = FakeModel(fail_first=[aiohttp.ClientConnectionError()] * 2)
    with pytest.raises(ModelUnavailableError, match="unavailable") as info:  # 503 / UNAVAILABLE
        asyncio.run(twice.client()(rows(2)))
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError)
    assert len(twice.calls) == 2
    other = FakeModel(fail_first=[RuntimeError("model worker died")])
    with pytest.raises(RuntimeError, match="died"):
        asyncio.run(other.client(coalesce_inflight=2)(rows(2)))
    assert len(other.calls) == 1  # not retried


class Probe:
    def __init__(self, answer: object = True, delay: float = 0.0) -> None:
        self.answer, self.delay, self.timeouts = answer, delay, []

    async def is_ready(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return bool(self.answer)


def test_model_ready_asks_the_model_service_with_a_deadline() -> None:
    assert asyncio.run(model_ready(object()))  # in-process dependency: no probe
    ok = Probe(True)
    assert asyncio.run(model_ready(ok, probe_timeout_s=3)) and ok.timeouts == [3]
    assert not asyncio.run(model_ready(Probe(False)))
    assert not asyncio.run(model_ready(Probe(OSError("refused"))))
    assert not asyncio.run(model_ready(Probe(True, delay=5), deadline_s=0.05))
