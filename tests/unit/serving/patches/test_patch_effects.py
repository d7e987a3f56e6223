"""What three patches do to the installed BentoML: request tracing switched off
(request_tracing), the dispatcher's idle wait (dispatcher_wait), media types computed once
(media_types)."""

from __future__ import annotations

from har.serving.patches import dispatcher_wait, media_types
from tests.unit.serving.patches import bentoml_probe_app


def test_bentoml_builds_its_app_without_the_tracing_middleware():
    """BentoML's own app (built by ``ServiceAppFactory``, tests/unit/serving/patches/bentoml_probe_app.py):
    upstream puts ``OpenTelemetryMiddleware`` in it and answers with the span's id in
    ``X-BentoML-Request-ID``; patched, a pass-through takes its place and requests are
    answered the same, without that header."""
    patched = bentoml_probe_app.run("patched")
    upstream = bentoml_probe_app.run("upstream")
    assert upstream["middlewares"][1] == "OpenTelemetryMiddleware"
    assert patched["middlewares"] == [
        "RunnerTrafficMetricsMiddleware",
        "_NoTracing",
        *upstream["middlewares"][2:],
    ]
    assert len(upstream["request_id_header"]) == 16  # a span id, in hex
    assert patched["request_id_header"] is None
    assert patched["echo"] == upstream["echo"] == [200, "hihi"]


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

    dispatcher_wait.dispatch_without_idle_wait()
    dispatcher_wait.dispatch_without_idle_wait()  # idempotent: wraps once
    assert learned_wait(Optimizer.log_outbound) == 0.0
    # upstream learns the waits it saw, and keeps lone requests back that long
    assert abs(learned_wait(Optimizer._har_upstream_log_outbound) - 0.05) < 1e-9


def test_media_types_are_computed_once_per_class(monkeypatch):
    from pathlib import Path

    import numpy as np
    from _bentoml_sdk.io_models import IOMixin, ensure_io_descriptor

    media_types.cache_media_types()
    media_types.cache_media_types()
    expected = {np.ndarray: "application/json", str: "text/plain", Path: "application/octet-stream"}
    for typ, media in expected.items():
        cls = ensure_io_descriptor(typ)  # BentoML's IO model for the type
        monkeypatch.delitem(media_types.MEDIA_TYPES, cls, raising=False)  # not asked yet
        calls: list[int] = []
        schema = cls.model_json_schema
        monkeypatch.setattr(
            cls, "model_json_schema", lambda *a, s=schema, c=calls, **k: c.append(1) or s(*a, **k)
        )
        assert [cls.mime_type() for _ in range(3)] == [media] * 3
        assert len(calls) == 1  # computed by upstream once, then kept
        upstream = IOMixin._har_upstream_mime_type
        assert [upstream(cls) for _ in range(3)] == [media] * 3
        assert len(calls) == 4  # upstream builds the schema on every call
