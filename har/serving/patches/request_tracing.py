"""request-tracing: no OpenTelemetry spans around every HTTP request (left out with ``HAR_TRACING=1``)."""

from __future__ import annotations

from typing import Any

from har.serving.patches.guard import UPSTREAM, Expect, Patch

#: This patch's name: the one left out when BentoML's tracing is wanted (``HAR_TRACING=1``).
NAME = "request-tracing"


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


def check() -> list[str]:
    from _bentoml_impl.server import app
    from opentelemetry.instrumentation import asgi

    e = Expect()
    e.attribute(asgi, "OpenTelemetryMiddleware")
    # BentoML imports the class when it builds each app, not when its module is imported
    e.calls_in(
        app.ServiceAppFactory,
        "middlewares",
        "from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware",
    )
    e.true(
        not hasattr(app, "OpenTelemetryMiddleware"),
        "_bentoml_impl.server.app imports OpenTelemetryMiddleware at module level",
    )
    return e.found


PATCH = Patch(
    name=NAME,
    what="opentelemetry.instrumentation.asgi.OpenTelemetryMiddleware is a pass-through "
    "when BentoML builds its apps (disable_request_tracing; not applied "
    "with HAR_TRACING=1)",
    why="BentoML wraps every request in OpenTelemetry spans whatever its tracing "
    "configuration, even when they are never sampled",
    upstream="none found",
    loses="CPU on every request (a server span and one span per receive/send message)",
    until="BentoML skips the middleware when tracing is off",
    required=False,
    check=check,
    apply=disable_request_tracing,
)
