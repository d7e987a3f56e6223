"""Coalescing concurrent model calls: grouping, order, errors, no delay when alone."""

import asyncio

import numpy as np
import pytest

from har.serving.coalescing import Coalescer


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_calls_are_merged_and_split_back_in_order():
    seen = []

    async def fn(x):
        seen.append(len(x))
        await asyncio.sleep(0.01)
        return x * 2

    async def main():
        c = Coalescer(fn, max_rows=128, max_inflight=1, fill=False)
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
        c = Coalescer(fn, max_rows=8, max_inflight=1, fill=False)
        await asyncio.gather(*(c(np.zeros((3, 1))) for _ in range(20)))

    _run(main())
    assert max(sizes) <= 8 and sum(sizes) == 60


def test_lone_call_goes_out_at_once():
    async def fn(x):
        return x + 1

    async def main():
        c = Coalescer(fn, max_rows=128, max_inflight=2, fill=False)
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
        c = Coalescer(fn, max_rows=128, max_inflight=1, fill=False)
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
        c = Coalescer(fn, max_rows=128, max_inflight=1, fill=False)
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
        Coalescer(lambda x: x, max_rows=128, max_inflight=0, fill=False)


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _filling(took: float = 0.02, max_wait_s: float = 0.05):
    """A fill=True coalescer whose every call takes ``took`` s on a fake clock (and one
    real loop turn); ``rows`` collects each call's row count."""
    clock, rows = _Clock(), []

    async def fn(x):
        rows.append(len(x))
        clock.t += took
        await asyncio.sleep(0)
        return x

    c = Coalescer(fn, max_rows=128, max_inflight=1, fill=True, max_wait_s=max_wait_s, clock=clock)
    return c, clock, rows


def test_fill_holds_the_next_call_until_a_third_of_the_loop_queued():
    async def main():
        c, _, rows = _filling()
        # 10 clients at once: the first goes alone, the 9 others together (1 + 9)
        await asyncio.gather(*(c(np.zeros((1, 2))) for _ in range(10)))
        assert rows == [1, 9]
        # they come back one by one right after: held until 9 // 3 = 3 queued
        first = [asyncio.ensure_future(c(np.zeros((1, 2)))) for _ in range(2)]
        await asyncio.sleep(0)
        held = c.calls
        third = asyncio.ensure_future(c(np.zeros((1, 2))))
        await asyncio.sleep(0)
        sent = c.calls
        await asyncio.gather(*first, third)
        return held, sent, rows

    held, sent, rows = _run(main())
    assert (held, sent) == (2, 3) and rows == [1, 9, 3]


def test_fill_sends_a_held_call_at_its_deadline():
    async def main():
        c, _, rows = _filling(took=0.03)
        await asyncio.gather(*(c(np.zeros((1, 2))) for _ in range(10)))  # 1 + 9
        loop = asyncio.get_running_loop()
        t = loop.time()
        out = await c(np.zeros((1, 2)))  # alone: held for at most the last call's 30 ms
        return rows, loop.time() - t, out.shape

    rows, waited, shape = _run(main())
    assert rows == [1, 9, 1] and shape == (1, 2)
    assert 0.02 <= waited < 1.0


def test_fill_sends_at_once_after_a_quiet_spell():
    async def main():
        c, clock, rows = _filling(took=0.03)
        await asyncio.gather(*(c(np.zeros((1, 2))) for _ in range(10)))  # 1 + 9
        clock.t += 0.031  # longer than the last call took: the load went away
        lone = asyncio.ensure_future(c(np.zeros((1, 2))))
        await asyncio.sleep(0)
        sent = c.calls
        await lone
        return sent, rows

    sent, rows = _run(main())
    assert sent == 3 and rows == [1, 9, 1]  # the lone request went out without waiting


def test_fill_never_holds_one_client_at_a_time():
    async def main():
        c, _, rows = _filling(took=0.03)
        sent = []
        for _ in range(5):  # c=1: each request right after the previous answer
            call = asyncio.ensure_future(c(np.zeros((1, 2))))
            await asyncio.sleep(0)
            sent.append(c.calls)
            await call
        return sent, rows

    sent, rows = _run(main())
    assert sent == [1, 2, 3, 4, 5] and rows == [1] * 5


def test_fill_off_sends_the_first_request_alone():
    async def main():
        c, _, rows = _filling()
        c.fill = False
        await asyncio.gather(*(c(np.zeros((1, 2))) for _ in range(10)))
        await asyncio.gather(*(c(np.zeros((1, 2))) for _ in range(3)))
        return rows

    assert _run(main()) == [1, 9, 1, 2]  # the first of the three went out at once


def test_the_next_call_goes_out_before_the_answered_callers_resume():
    events = []

    async def fn(x):
        events.append(f"call {len(x)}")
        await asyncio.sleep(0.01)
        return x

    async def main():
        c = Coalescer(fn, max_rows=128, max_inflight=1, fill=False)

        async def client(i):
            await c(np.zeros((1, 2)))
            events.append(f"answered {i}")

        await asyncio.gather(*(client(i) for i in range(3)))

    _run(main())
    # the model gets the queued rows while the first caller writes its answer
    assert events == ["call 1", "call 2", "answered 0", "answered 1", "answered 2"]


def test_on_call_gets_how_long_each_call_s_oldest_row_waited():
    waits: list[float] = []

    async def fn(x):
        await asyncio.sleep(0.05)
        return x

    async def main():
        c = Coalescer(fn, max_rows=128, max_inflight=1, on_call=waits.append, fill=False)
        first = asyncio.ensure_future(c(np.zeros((1, 1))))  # goes out at once
        await asyncio.sleep(0)
        rest = [c(np.zeros((1, 1))) for _ in range(5)]  # wait for the first call to return
        await asyncio.gather(first, *rest)
        return c.calls

    calls = _run(main())
    assert calls == 2 and len(waits) == 2
    assert waits[0] < 0.01  # a lone call is not held
    assert 0.04 <= waits[1] < 0.5  # held while the first call (50 ms) was open
