"""Workarounds for BentoML behaviour (1.4.30 to 1.4.40) that costs memory and throughput.

The functions that patch BentoML (:func:`cancel_traffic_timers`, :func:`bound_metric_labels`,
:func:`dispatch_without_idle_wait`, :func:`cache_media_types`, :func:`disable_request_tracing`)
are applied through the registry in ``har/bentoml_patches.py``: ``har.assembly.configure``
(run when ``service.py`` is imported, in every worker process BentoML starts) checks each
against the BentoML it was written for, then applies it. :func:`die_with_supervisor` and
:func:`freeze_startup_heap` (each worker's last start-up step) touch no BentoML code. Each
patch keeps what it replaced as ``_har_upstream_<name>`` on the patched object, so the
checks and tests can inspect upstream's code after the patch. The figures in the
docstrings were measured on 2 cores with ``python -m load_tests.bench`` and
``python -m load_tests.bench.ab``; docs/bentoml-patches.md lists every patch.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

logger = logging.getLogger("har.bentoml")

#: Prefix of the attribute on which a patch keeps what it replaced (``_har_upstream_<name>``).
UPSTREAM = "_har_upstream_"


def cancel_traffic_timers() -> None:
    """Make BentoML's ``TimeoutMiddleware`` cancel its per-request timer when the request ends.

    BentoML (1.4.30 up to 1.4.40 at least) schedules ``loop.call_later(traffic timeout,
    ...)`` for every HTTP request and never cancels it, so each finished request's timer,
    waiter future and context (with its OpenTelemetry span) stay on the event loop for
    the whole traffic timeout (120 s here): at 400 requests/s that is ~50,000 live
    timers, ~250 MB in the API worker, and garbage-collection passes over them that cost
    ~25 % of the HTTP throughput after a few minutes of load. Same behaviour otherwise
    (504 after the timeout), timer cancelled in ``finally``. Idempotent.
    """
    from bentoml._internal.server.http import traffic
    from starlette.responses import JSONResponse

    cls = traffic.TimeoutMiddleware
    if getattr(cls, "_har_cancels_timer", False):
        return
    setattr(cls, UPSTREAM + "__call__", cls.__call__)

    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        try:
            await waiter
        except TimeoutError:
            if fut.cancel():
                body = {"error": f"Not able to process the request in {self.timeout} seconds"}
                await JSONResponse(body, status_code=504)(scope, receive, send)
        else:
            await fut
        finally:
            timer.cancel()

    cls.__call__ = __call__  # type: ignore[method-assign]
    cls._har_cancels_timer = True  # type: ignore[attr-defined]


def freeze_startup_heap() -> None:
    """Exclude everything alive after start-up from later garbage collections.

    A worker holds ~270,000 long-lived objects after importing BentoML, pydantic,
    gRPC and whylogs. Each ``/predict`` body becomes ~200 nested lists while it is
    parsed, many requests are in flight at once, so full collections come often and
    each walked the whole start-up heap: ~25 % of the API worker's time at c=64.
    Frozen, they are skipped. Measured in an interleaved A/B (two servers, 5 rounds,
    HTTP c=64): median 480 vs 358 requests/s, p99 190 vs 366 ms. Re-checked on BentoML
    1.4.40 (load_tests/AB.md, 3 rounds): without it c=64 HTTP 0.84x, gRPC 0.92x, p99
    103 -> 295 ms and 75 -> 221 ms.
    """
    gc.collect()
    gc.freeze()


class _NoTracing:
    """An ASGI pass-through in place of OpenTelemetry's ``OpenTelemetryMiddleware``."""

    def __init__(self, app: Any, **_: Any) -> None:
        self.app = app

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return self.app(scope, receive, send)


def disable_request_tracing() -> None:
    """Keep BentoML from wrapping every HTTP request in OpenTelemetry spans.

    BentoML 1.4 installs ``OpenTelemetryMiddleware`` in every service's ASGI app
    whatever its ``tracing`` configuration says; with the default sample rate (0) the
    spans are never recorded nor exported, yet each request still creates a server span
    and one child span per ``receive``/``send`` message and attaches their contexts.
    BentoML imports the class when it builds the app, so replacing the module attribute
    before that removes them. Without it BentoML sends no ``X-BentoML-Request-ID``
    header (the span's id). Call at import, in every worker (``service.py`` does unless
    ``HAR_TRACING=1``). Idempotent.
    """
    from opentelemetry.instrumentation import asgi

    upstream: Any = asgi.OpenTelemetryMiddleware
    if upstream is not _NoTracing:
        setattr(asgi, UPSTREAM + "OpenTelemetryMiddleware", upstream)
    asgi.OpenTelemetryMiddleware = _NoTracing  # type: ignore[misc,assignment]


#: The model service's ``runner_connection`` config. BentoML 1.4.31+ replaces the
#: caller's aiohttp session after 100 calls or 300 s and closes the old one while calls
#: still use it (``ServerDisconnectedError`` under load: bentoml/BentoML#5540, #5544);
#: the caller reads this callee-side setting, so the sessions are never recycled.
#: ``max_age`` must be a float. BentoML 1.4.30 ignores the key.
RUNNER_CONNECTION: dict[str, float] = {"max_requests": 10**9, "max_age": 1e9}


#: Seconds an orphaned worker's graceful stop may take before it exits anyway.
ORPHAN_GRACE_S = 1.5


def die_with_supervisor(grace_s: float = ORPHAN_GRACE_S) -> None:
    """Ask Linux to send this worker SIGTERM when its parent (``bentoml serve``'s
    supervisor) dies, so a SIGKILL of the supervisor never leaves workers holding the
    ports (``prctl(PR_SET_PDEATHSIG)``; a no-op elsewhere). Call at import in each worker.

    SIGTERM starts the worker's graceful stop (flushing its profiles), which can wait
    for open connections; a watchdog thread ends the process ``grace_s`` seconds after
    the parent is gone whatever that stop is doing: nobody would restart an orphan.
    """
    import ctypes
    import os
    import signal
    import sys
    import threading
    import time

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call: nobody would signal
        os.kill(os.getpid(), signal.SIGTERM)

    def exit_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=exit_when_orphaned, name="orphan-watchdog", daemon=True).start()


#: The ``endpoint`` label of requests to paths no route serves.
UNMATCHED_PATH = "<unmatched>"


def route_label(routes: Any, path: str) -> str:
    """The route template serving ``path`` (``/predict``, ``/static/{path}``) among
    Starlette ``routes`` (mounts searched recursively), else :data:`UNMATCHED_PATH`."""
    for route in routes:
        sub = getattr(route, "routes", None)
        prefix = getattr(route, "path", "")
        regex = getattr(route, "path_regex", None)
        if sub is not None and hasattr(route, "app"):  # a Mount
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                label = route_label(sub, path[len(prefix) :] or "/")
                if label != UNMATCHED_PATH:
                    return prefix + label
        elif regex is not None and regex.match(path):
            return str(prefix)
    return UNMATCHED_PATH


def bound_metric_labels() -> None:
    """Label BentoML's HTTP metrics by route, not by the raw URL path.

    BentoML (1.4.40) labels ``bentoml_service_request_*`` with ``scope["path"]``, so every
    unknown path a client sends adds series (300 random 404 paths: 6,000 series). The
    patch wraps the metrics' ``labels`` so that ``endpoint`` is the matching route's
    template, and one shared :data:`UNMATCHED_PATH` for paths no route serves. Where the
    middleware no longer looks as expected (no router below it, no metric labelled
    ``endpoint``) it logs a WARNING at its first request instead of doing nothing silently.
    Idempotent.
    """
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    cls = RunnerTrafficMetricsMiddleware
    if getattr(cls, "_har_bounded_labels", False):
        return
    setup = cls._setup
    setattr(cls, UPSTREAM + "_setup", setup)

    def _setup(self: Any, *args: Any, **kwargs: Any) -> None:
        setup(self, *args, **kwargs)
        app, routes = self.app, None
        for _ in range(64):  # down the middleware chain to the router
            routes = getattr(app, "routes", None)
            if routes is not None or not hasattr(app, "app"):
                break
            app = app.app
        if routes is None:
            logger.warning(
                "BentoML patch 'metric-labels' found no router below BentoML's metrics "
                "middleware: /metrics labels requests by their raw path (unbounded series)"
            )
            return
        bounded = 0
        for metric in vars(self).values():
            if "endpoint" in getattr(metric, "_labelnames", ()):
                metric.labels = _labelled(metric.labels, routes)
                bounded += 1
        if not bounded:
            logger.warning(
                "BentoML patch 'metric-labels' found no metric labelled 'endpoint' on "
                "BentoML's metrics middleware: /metrics may label requests by raw path"
            )

    cls._setup = _setup  # type: ignore[method-assign]
    cls._har_bounded_labels = True  # type: ignore[attr-defined]


def _labelled(labels: Any, routes: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if "endpoint" in kwargs:
            kwargs["endpoint"] = route_label(routes, kwargs["endpoint"])
        return labels(*args, **kwargs)

    return call


def dispatch_without_idle_wait() -> None:
    """Keep BentoML's batch dispatcher from holding a request back when nothing else waits.

    BentoML's ``CorkDispatcher`` learns an average wait from its past batches and keeps
    a lone queued request back (1 ms ticks) while that wait looks worth it. Here the API
    worker already merges concurrent callers into one model call (``HAR_COALESCE_INFLIGHT``,
    har/coalescing.py), so the model service sees one call at a time per API worker and
    the learned wait only idles the model. With every batch logged as having waited 0 s
    the learned wait stays 0: a request is dispatched as soon as the previous batch is
    done, and requests that queue behind a running batch still go out together (the
    batching that pays on one core). Interleaved A/B (load_tests/AB.md, 3 rounds of
    10 s): c=64 HTTP 1.10x, gRPC 1.11x. The first calls' start-up training, which
    measures batches of 1-3 requests, is unchanged. Idempotent.
    """
    from bentoml._internal.marshal import dispatcher

    cls = dispatcher.Optimizer
    if hasattr(cls, "_har_upstream_log_outbound"):  # patched already
        return
    log_outbound = cls.log_outbound

    def log_without_wait(self: Any, n: int, wait: float, duration: float) -> None:
        log_outbound(self, n=n, wait=0.0, duration=duration)

    cls._har_upstream_log_outbound = log_outbound  # type: ignore[attr-defined]
    cls.log_outbound = log_without_wait  # type: ignore[method-assign]


def cache_media_types() -> None:
    """Compute each BentoML IO model's response media type once, not on every response.

    ``IOMixin.mime_type()`` is called for every response; for a root model (the model
    service's ndarray answers) it builds a pydantic ``TypeAdapter`` and a JSON schema
    each time: 5 % of the model worker's samples at c=1 (py-spy). The answer depends on
    the class alone (its fields and ``media_type``, fixed once BentoML has built it), so
    it is kept per class. Idempotent.
    """
    from _bentoml_sdk.io_models import IOMixin

    if hasattr(IOMixin, "_har_upstream_mime_type"):  # patched already
        return
    compute = IOMixin._har_upstream_mime_type = IOMixin.mime_type.__func__
    cache = MEDIA_TYPES

    def mime_type(cls: type) -> str:
        try:
            return cache[cls]
        except KeyError:
            answer: str = compute(cls)
            cache[cls] = answer
            return answer

    IOMixin.mime_type = classmethod(mime_type)


#: :func:`cache_media_types`' answers, per IO model class.
MEDIA_TYPES: dict[type, str] = {}
