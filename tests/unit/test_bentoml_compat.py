"""har.bentoml_compat: BentoML's request tracing can be switched off."""

from __future__ import annotations

import asyncio

from har import bentoml_compat


def test_disable_request_tracing_leaves_a_pass_through(monkeypatch):
    from opentelemetry.instrumentation import asgi

    monkeypatch.setattr(asgi, "OpenTelemetryMiddleware", asgi.OpenTelemetryMiddleware)
    bentoml_compat.disable_request_tracing()
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 204})

    sent = []

    async def send(msg):
        sent.append(msg)

    # what BentoML builds: Middleware(OpenTelemetryMiddleware, **options)(app)
    wrapped = asgi.OpenTelemetryMiddleware(app, excluded_urls=None, tracer_provider=None)
    asyncio.run(wrapped({"type": "http", "path": "/predict"}, None, send))
    assert seen == ["/predict"] and sent == [{"type": "http.response.start", "status": 204}]


def learned_wait(log_outbound) -> float:
    """The dispatcher optimizer's learned wait after batches (1 ms per item + 2 ms) that
    each waited 50 ms."""
    from bentoml._internal.marshal.dispatcher import Optimizer

    opt = Optimizer(max_latency=1.0)
    for n in range(1, 11):
        log_outbound(opt, n=n, wait=0.05, duration=0.001 * n + 0.002)
    opt.trigger_refresh()
    # the duration model is still learned
    assert abs(opt.o_a - 0.001) < 1e-6 and abs(opt.o_b - 0.002) < 1e-6
    return opt.wait


def test_dispatcher_learns_no_idle_wait():
    from bentoml._internal.marshal.dispatcher import Optimizer

    bentoml_compat.dispatch_without_idle_wait()
    bentoml_compat.dispatch_without_idle_wait()  # idempotent: wraps once
    assert learned_wait(Optimizer.log_outbound) == 0.0
    # upstream learns the waits it saw, and keeps lone requests back that long
    assert abs(learned_wait(Optimizer._har_upstream_log_outbound) - 0.05) < 1e-9


def test_media_types_are_computed_once_per_class(monkeypatch):
    from pathlib import Path

    import numpy as np
    from _bentoml_sdk.io_models import ensure_io_descriptor

    bentoml_compat.cache_media_types()
    bentoml_compat.cache_media_types()
    expected = {np.ndarray: "application/json", str: "text/plain", Path: "application/octet-stream"}
    for typ, media in expected.items():
        cls = ensure_io_descriptor(typ)
        calls = []
        schema = cls.model_json_schema
        monkeypatch.setattr(
            cls, "model_json_schema", lambda *a, s=schema, c=calls, **k: c.append(1) or s(*a, **k)
        )
        assert [cls.mime_type() for _ in range(3)] == [media] * 3
        assert len(calls) <= 1  # 0 when an earlier test already asked
