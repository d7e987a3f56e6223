"""Coalescing concurrent model calls: grouping, order, errors, no delay when alone."""

import asyncio

import numpy as np
import pytest

from har.coalescing import Coalescer


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_calls_are_merged_and_split_back_in_order():
    seen = []

    async def fn(x):
        seen.append(len(x))
        await asyncio.sleep(0.01)
        return x * 2

    async def main():
        c = Coalescer(fn, max_rows=128, max_inflight=1)
        xs = [np.full((k % 3 + 1, 2), float(k)) for k in range(40)]
        outs = await asyncio.gather(*(c(x) for x in xs))
        for x, o in zip(xs, outs, strict=True):
            np.testing.assert_array_equal(o, x * 2)
        return c.calls

    calls = _run(main())
    assert calls < 40 and sum(seen) == sum(k % 3 + 1 for k in range(40))
    assert calls == len(seen)


def test_max_rows_is_respected():
    sizes = []

    async def fn(x):
        sizes.append(len(x))
        await asyncio.sleep(0.001)
        return x

    async def main():
        c = Coalescer(fn, max_rows=8, max_inflight=1)
        await asyncio.gather(*(c(np.zeros((3, 1))) for _ in range(20)))

    _run(main())
    assert max(sizes) <= 8 and sum(sizes) == 60


def test_lone_call_goes_out_at_once():
    async def fn(x):
        return x + 1

    async def main():
        c = Coalescer(fn, max_inflight=2)
        loop = asyncio.get_running_loop()
        t = loop.time()
        out = await c(np.zeros((1, 2)))
        return loop.time() - t, out

    dt, out = _run(main())
    assert dt < 0.05
    np.testing.assert_array_equal(out, np.ones((1, 2)))


def test_errors_reach_every_caller_and_the_next_call_works():
    fail = {"on": True}

    async def fn(x):
        await asyncio.sleep(0.001)
        if fail["on"]:
            raise ConnectionError("model service down")
        return x

    async def main():
        c = Coalescer(fn, max_inflight=1)
        results = await asyncio.gather(
            *(c(np.zeros((1, 1))) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        fail["on"] = False
        return await c(np.ones((2, 1)))

    np.testing.assert_array_equal(_run(main()), np.ones((2, 1)))


def test_cancelled_caller_does_not_break_others():
    async def fn(x):
        await asyncio.sleep(0.02)
        return x

    async def main():
        c = Coalescer(fn, max_inflight=1)
        first = asyncio.create_task(c(np.zeros((1, 1))))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(c(np.zeros((1, 1))))
        other = asyncio.create_task(c(np.ones((1, 1))))
        await asyncio.sleep(0)
        doomed.cancel()
        await first
        return await other

    np.testing.assert_array_equal(_run(main()), np.ones((1, 1)))


def test_invalid_inflight():
    with pytest.raises(ValueError):
        Coalescer(lambda x: x, max_inflight=0)
