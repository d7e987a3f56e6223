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
