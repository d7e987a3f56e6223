"""The shadow queue and its tap on a real Scorer, with fake models (no TensorFlow):
agreement, counts, and that a failing or slow shadow never touches the client's answers."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from har.core.scorer import Scorer
from har.domain.errors import InputError
from har.http.endpoints import shadow_answer
from har.http.errors import error_response
from har.settings import Settings
from har.shadow import Shadow, ShadowQueue, rescaler
from tests.helpers.cards import make_card

CARD = make_card(
    ["a", "b", "c"], name="t", window=20, sample_rate_hz=10, scale=(2, 2, 2, 30, 30, 30)
)


async def model(scaled: np.ndarray) -> np.ndarray:
    """Softmax of the per-channel means of the first three channels."""
    logits = scaled.mean(axis=1)[:, :3]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


async def other_model(scaled: np.ndarray) -> np.ndarray:
    """A different model: the first model's classes rotated by one for half the windows."""
    p = await model(scaled)
    flip = scaled[:, 0, 3] > 0
    p[flip] = np.roll(p[flip], 1, axis=1)
    return p


async def failing(scaled: np.ndarray) -> np.ndarray:
    raise ConnectionError("shadow down")


async def sleeping(scaled: np.ndarray) -> np.ndarray:
    await asyncio.sleep(5)
    return await model(scaled)


def windows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rest = np.array([0, 0, 9.8, 0, 0, 0])
    return (rng.normal(0, [2, 2, 2, 30, 30, 30], (n, 20, 6)) + rest).astype(np.float32)


def settings(**kw: object) -> Settings:
    base = {"shadow_min_windows": 10, "max_batch_size": 16, "shadow_timeout_s": 0.2}
    return Settings(**{**base, **kw})


def shadowed(shadow_infer, **kw: object) -> tuple[Scorer, Shadow]:
    scorer = Scorer(CARD, "t:1", model)
    shadow = Shadow.build(settings(**kw), CARD, "t:1", CARD, "s:1", shadow_infer, metrics=False)
    scorer.infer = shadow.tap(scorer.infer)
    return scorer, shadow


async def drained(shadow: Shadow, sent: int, timeout: float = 5.0) -> None:
    """Wait until the shadow compared or dropped every one of ``sent`` windows."""
    deadline = time.monotonic() + timeout
    while True:
        a = shadow.answer()
        if shadow.queue.pending == 0 and a["windows"] + a["dropped"] >= sent:
            return
        assert time.monotonic() < deadline, a
        await asyncio.sleep(0.01)


async def serve(scorer: Scorer, requests: list[int]) -> list[list[int]]:
    """Predict ``requests`` windows per call, concurrently; the class ids answered."""
    calls = [scorer.predict(windows(n, seed=i)) for i, n in enumerate(requests)]
    preds = await asyncio.gather(*calls)
    return [p.class_ids.tolist() for p in preds]


def test_the_served_model_as_shadow_agrees_on_every_window() -> None:
    async def main() -> dict:
        scorer, shadow = shadowed(model)
        await serve(scorer, [1, 5, 40, 3, 17])  # 40 > max_batch: split in chunks
        await drained(shadow, 66)
        await shadow.close()
        return shadow.answer()

    a = asyncio.run(main())
    assert a["status"] == "ok" and a["windows"] == 66 and a["agreement"] == 1.0
    assert a["dropped"] == 0 and a["disagreement"] == {}
    assert a["confidence"]["primary"] == pytest.approx(a["confidence"]["shadow"])


def test_a_different_shadow_disagrees_and_every_window_is_counted() -> None:
    async def main() -> tuple[dict, list]:
        scorer, shadow = shadowed(other_model)
        served = await serve(scorer, [30, 30, 30])
        await drained(shadow, 90)
        return shadow.answer(), served

    a, served = asyncio.run(main())
    assert a["windows"] == 90 and 0 < a["agreement"] < 1
    disagreeing = sum(n for row in a["disagreement"].values() for n in row.values())
    assert disagreeing == round(90 * (1 - a["agreement"])) > 0
    for p, row in a["disagreement"].items():
        assert p not in row  # only pairs of different classes
    # the client got the served model's answers, not the shadow's
    plain = Scorer(CARD, "t:1", model)
    want = [asyncio.run(plain.predict(windows(30, seed=i))).class_ids.tolist() for i in range(3)]
    assert served == want


@pytest.mark.parametrize(("shadow_infer", "reason"), [(failing, "error"), (sleeping, "timeout")])
def test_a_failing_or_slow_shadow_leaves_the_answers_alone_and_counts_drops(
    shadow_infer, reason: str
) -> None:
    async def main() -> tuple[dict, list, float]:
        scorer, shadow = shadowed(shadow_infer)
        t0 = time.monotonic()
        served = await serve(scorer, [4] * 10)
        elapsed = time.monotonic() - t0
        await drained(shadow, 40)
        return shadow.answer(), served, elapsed

    a, served, elapsed = asyncio.run(main())
    plain = Scorer(CARD, "t:1", model)
    want = [asyncio.run(plain.predict(windows(4, seed=i))).class_ids.tolist() for i in range(10)]
    assert served == want  # same answers, no exception reached the client
    assert elapsed < 0.2  # never waited for the shadow (it sleeps 5 s, times out at 0.2 s)
    assert a["windows"] == 0 and a["dropped"] == 40 and a["dropped_by_reason"][reason] == 40
    assert a["status"] == "insufficient_data" and a["agreement"] is None


def test_a_full_queue_drops_whole_requests_without_waiting() -> None:
    async def main() -> tuple[dict, list[bool]]:
        got: list[tuple[np.ndarray, np.ndarray]] = []
        dropped: list[tuple[int, str]] = []
        q = ShadowQueue(
            model,
            lambda p, s: got.append((p, s)),
            lambda n, r: dropped.append((n, r)),
            capacity=10,
            max_batch=4,
            timeout_s=1,
        )
        x = windows(6)
        accepted = [q.submit(x, await model(x)) for _ in range(3)]  # 6 fit, 6+6 > 10
        assert q.pending == 6
        await asyncio.sleep(0.05)
        await q.close()
        assert q.submit(x, await model(x)) is False  # closed
        return {"got": sum(len(p) for p, _ in got), "dropped": dropped}, accepted

    out, accepted = asyncio.run(main())
    assert accepted == [True, False, False]
    assert out["got"] == 6 and out["dropped"] == [
        (6, "queue_full"),
        (6, "queue_full"),
        (6, "closed"),
    ]


def test_a_shadow_with_another_scaler_gets_its_own_scaling() -> None:
    other = CARD.model_copy(update={"scaler": CARD.scaler.model_copy(update={"scale": [4] * 6})})
    prepare = rescaler(CARD, other)
    assert prepare is not None and rescaler(CARD, CARD) is None
    canonical = windows(3)
    from har.domain.preprocessing import scale

    np.testing.assert_allclose(
        prepare(scale(canonical, CARD.scaler)), scale(canonical, other.scaler), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(InputError, match="cannot score the same windows"):
        rescaler(CARD, CARD.model_copy(update={"window": 40}))


def test_shadow_answer_is_off_without_a_shadow_and_400_for_a_bad_interval() -> None:
    off = shadow_answer(None, None, None)
    assert off["status"] == "off" and off["windows"] == 0 and off["disagreement"] == {}
    with pytest.raises(InputError) as info:
        shadow_answer(None, "yesterday-ish", None)
    answer = error_response(info.value)  # the read-only routes' exception handler
    assert answer.status_code == 400 and b"yesterday-ish" in answer.body


def test_with_a_tracer_each_shadow_call_is_a_span_in_its_requests_traces() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    async def main() -> None:
        scorer = Scorer(CARD, "t:1", model)
        shadow = Shadow.build(
            settings(), CARD, "t:1", CARD, "s:1", sleepy_model, metrics=False, tracer=tracer
        )
        scorer.infer = shadow.tap(scorer.infer)

        async def request(name: str, n: int) -> None:
            with tracer.start_as_current_span(name):
                await scorer.predict(windows(n))

        await request("first", 3)  # the shadow call starts at once, with these 3
        await asyncio.gather(request("second", 2), request("third", 4))  # merged
        await drained(shadow, 9)
        await shadow.close()

    asyncio.run(main())
    spans = {s.name: s for s in exporter.get_finished_spans() if s.name != "har.shadow_call"}
    calls = [s for s in exporter.get_finished_spans() if s.name == "har.shadow_call"]
    assert [dict(c.attributes or {}) for c in calls] == [
        {"har.model": "shadow", "har.model_tag": "s:1", "har.rows": n} for n in (3, 6)
    ]
    first, merged = calls
    assert first.parent is not None and first.parent.span_id == spans["first"].context.span_id
    assert first.context.trace_id == spans["first"].context.trace_id and not first.links
    # the merged call: child of the first request in it, linked to the other
    assert merged.parent is not None and merged.parent.span_id == spans["second"].context.span_id
    assert [link.context.span_id for link in merged.links] == [spans["third"].context.span_id]


def test_without_a_tracer_no_context_is_kept() -> None:
    async def main() -> list:
        _, shadow = shadowed(sleepy_model)
        x = windows(3)
        shadow.queue.submit(x, await model(x))
        items = list(shadow.queue._items)  # before the background task takes them
        await drained(shadow, 3)
        await shadow.close()
        return items

    items = asyncio.run(main())
    assert items and all(ctx is None for _, _, ctx in items)


async def sleepy_model(scaled: np.ndarray) -> np.ndarray:
    """:func:`model` after 50 ms: later requests wait and are merged into one call."""
    await asyncio.sleep(0.05)
    return await model(scaled)
