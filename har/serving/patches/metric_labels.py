"""metric-labels: BentoML's HTTP metrics labelled by route template, not by the raw URL path."""

from __future__ import annotations

import logging
from typing import Any

from har.serving.patches.guard import UPSTREAM, Expect, Patch

logger = logging.getLogger("har.bentoml")


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


def check() -> list[str]:
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as M

    e = Expect()
    e.params(M, "_setup", ("self", "metrics_client", "duration_buckets"))
    e.calls_in(M, "_setup", '"endpoint"')  # its metrics are labelled by endpoint
    # the label is the raw path, passed by keyword; the app it wraps is self.app
    e.calls_in(M, "__call__", 'endpoint = scope["path"]', "endpoint=endpoint", "self._setup()")
    e.calls_in(M, "__init__", "self.app = app")
    return e.found


PATCH = Patch(
    name="metric-labels",
    what="bentoml._internal.server.http.instruments.RunnerTrafficMetricsMiddleware._setup: "
    "its metrics' `endpoint` label becomes the route template, `<unmatched>` for unknown "
    "paths (bound_metric_labels)",
    why="BentoML labels request metrics with the raw URL path",
    upstream="none found",
    loses="a bound on /metrics: every distinct unknown path a client sends adds series "
    "(300 random 404 paths: 6,000 series), memory and scrape size without limit",
    until="BentoML labels by route template",
    required=True,
    check=check,
    apply=bound_metric_labels,
)
