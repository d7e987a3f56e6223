"""har.bentoml_compat: BentoML's request tracing switched off, the dispatcher's idle wait,
media types computed once, and the start-up heap frozen."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from har import bentoml_compat
from tests.unit import bentoml_probe_app


def test_bentoml_builds_its_app_without_the_tracing_middleware():
    """BentoML's own app (built by ``ServiceAppFactory``, tests/unit/bentoml_probe_app.py):
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

    bentoml_compat.dispatch_without_idle_wait()
    bentoml_compat.dispatch_without_idle_wait()  # idempotent: wraps once
    assert learned_wait(Optimizer.log_outbound) == 0.0
    # upstream learns the waits it saw, and keeps lone requests back that long
    assert abs(learned_wait(Optimizer._har_upstream_log_outbound) - 0.05) < 1e-9


def test_media_types_are_computed_once_per_class(monkeypatch):
    from pathlib import Path

    import numpy as np
    from _bentoml_sdk.io_models import IOMixin, ensure_io_descriptor

    bentoml_compat.cache_media_types()
    bentoml_compat.cache_media_types()
    expected = {np.ndarray: "application/json", str: "text/plain", Path: "application/octet-stream"}
    for typ, media in expected.items():
        cls = ensure_io_descriptor(typ)  # BentoML's IO model for the type
        monkeypatch.delitem(bentoml_compat.MEDIA_TYPES, cls, raising=False)  # not asked yet
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


def test_freeze_startup_heap_collects_then_freezes():
    """Garbage left by start-up is collected, not frozen; what is alive is left out of
    later collections (``gc.get_objects`` lists only what collections walk)."""

    class Node:
        pass

    garbage = Node()
    garbage.cycle = garbage  # type: ignore[attr-defined]
    gone = weakref.ref(garbage)
    del garbage
    alive = Node()
    bentoml_compat.freeze_startup_heap()
    assert gone() is None
    assert gc.is_tracked(alive) and all(o is not alive for o in gc.get_objects())


def test_the_api_worker_freezes_its_heap_as_its_last_start_up_step(monkeypatch):
    from har import assembly, graceful
    from har.access import Access
    from har.settings import Settings

    order: list[str] = []
    lease = object()

    def take(*_: Any) -> object:
        order.append("lease")
        return lease

    monkeypatch.setattr(graceful.CallerLease, "take", take)
    monkeypatch.setattr(graceful, "on_stop_begins", lambda hook: order.append("stop hook"))
    monkeypatch.setattr(bentoml_compat, "freeze_startup_heap", lambda: order.append("freeze"))
    worker = assembly.ApiWorker.__new__(assembly.ApiWorker)
    worker.settings = Settings(grpc_port=0)
    worker.grpc_server, worker._grpc_stop, worker._lease = None, None, None
    asyncio.run(worker.start(Access.from_settings(worker.settings), None))
    assert order == ["lease", "stop hook", "freeze"] and worker._lease is lease
