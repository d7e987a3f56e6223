"""traffic-timers: BentoML's ``TimeoutMiddleware`` cancels its per-request timer when the request ends.

Upstream's ``__call__`` (fingerprinted: :data:`FINGERPRINT`) with the timer cancelled in
``finally``; why and what it costs without: :func:`cancel_traffic_timers`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from har.core.answers import error_answer
from har.serving.patches.guard import UPSTREAM, Expect, Patch

#: :func:`~har.serving.patches.guard.fingerprint` of ``TimeoutMiddleware.__call__`` on WRITTEN_FOR.
FINGERPRINT = "fd8b9e3da28ed2b4"


def cancel_traffic_timers() -> None:
    """Make BentoML's ``TimeoutMiddleware`` cancel its per-request timer when the request ends.

    BentoML (1.4.30 up to 1.4.40 at least) schedules ``loop.call_later(traffic timeout,
    ...)`` for every HTTP request and never cancels it, so each finished request's timer,
    waiter future and context (with its OpenTelemetry span) stay on the event loop for
    the whole traffic timeout (120 s here): timers by the tens of thousands under load,
    hundreds of MB in the API worker, and garbage-collection passes over them that cost
    throughput (docs/performance.md). Same behaviour otherwise
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
                body = error_answer(f"Not able to process the request in {self.timeout} seconds")
                await JSONResponse(body, status_code=504)(scope, receive, send)
        else:
            await fut
        finally:
            timer.cancel()

    cls.__call__ = __call__  # type: ignore[method-assign]
    cls._har_cancels_timer = True  # type: ignore[attr-defined]


def check() -> list[str]:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    e = Expect()
    e.params(TimeoutMiddleware, "__init__", ("self", "app", "timeout"))
    e.params(TimeoutMiddleware, "_set_timer_out", ("self", "waiter"))
    e.source(
        TimeoutMiddleware,
        "__call__",
        ("self", "scope", "receive", "send"),
        FINGERPRINT,
    )
    return e.found


PATCH = Patch(
    name="traffic-timers",
    what="bentoml._internal.server.http.traffic.TimeoutMiddleware.__call__: upstream's "
    "code, with the timer cancelled when the request ends "
    "(cancel_traffic_timers)",
    why="the per-request `call_later` timer is never cancelled: every finished request "
    "stays on the event loop (with its context and span) for the traffic timeout",
    upstream="none found",
    loses="API worker memory (~250 MB at 400 req/s with the 120 s timeout) and ~25 % of "
    "HTTP throughput after a few minutes of load",
    until="BentoML cancels the timer (tests/unit/serving/patches/test_bentoml_workarounds.py's upstream "
    "test fails then)",
    required=False,
    check=check,
    apply=cancel_traffic_timers,
)
