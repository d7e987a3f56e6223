"""Every patch of BentoML's private internals, in one registry, checked at start.

Each :class:`Patch` names what it changes, why (the upstream defect), its upstream issue,
what is lost without it and when it can go (docs/bentoml-patches.md shows the same table).
``har.assembly.configure`` calls :func:`apply_patches` at start, in every process, before
anything else. Each patch is checked first:

- the installed ``bentoml.__version__`` (and ``uvicorn.__version__`` for the patch of
  uvicorn) must be the one the patch was written and tested for (:data:`WRITTEN_FOR`);
- what the patch replaces or calls must still have the expected shape: the attribute
  present, the parameters of its signature, the call sites it relies on, and, where the
  patch copies upstream code, a fingerprint of that code's source (:func:`fingerprint`).

A patch whose targets have another shape is not applied, and one on another version is
applied untested; either way one WARNING names the patch, what was expected and what was
found, and what the service loses. For the patches the service's correctness rests on
(``required``) start is refused instead (``SystemExit``), unless
``HAR_ALLOW_UNTESTED_BENTOML=1`` (``Settings.allow_untested_bentoml``).
tests/unit/test_bentoml_patches.py runs the same checks against the installed BentoML.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from har import bentoml_compat, bentoml_requests, graceful
from har.bentoml_compat import UPSTREAM

logger = logging.getLogger("har.bentoml")

#: The BentoML version every patch here was written and checked against.
WRITTEN_FOR = "1.4.40"
#: The uvicorn version the graceful-stop patch (of ``uvicorn.Server``) was written for.
UVICORN_WRITTEN_FOR = "0.54.0"
#: The setting that lets the service start with untested patches.
ALLOW_SETTING = "HAR_ALLOW_UNTESTED_BENTOML"
#: Name of the patch that is left out when BentoML's tracing is wanted (``HAR_TRACING=1``).
TRACING = "request-tracing"


@dataclass(frozen=True)
class Patch:
    """One patch of BentoML internals (or of a library, for BentoML's sake)."""

    name: str
    what: str  # what it changes
    why: str  # the upstream defect
    upstream: str  # upstream issue / PR, or "none found"
    loses: str  # what the service loses without it
    until: str  # when it can go
    required: bool  # start is refused without it (unless HAR_ALLOW_UNTESTED_BENTOML=1)
    check: Callable[[], list[str]]  # what differs from what the patch expects ([]: none)
    apply: Callable[[], None] | None  # None: relies on internals, replaces nothing
    written_for: Mapping[str, str] = field(default_factory=lambda: {"bentoml": WRITTEN_FOR})


@dataclass(frozen=True)
class Verdict:
    """What the checks found for one patch."""

    patch: Patch
    changed: tuple[str, ...]  # its targets differ: it is not applied
    untested: tuple[str, ...]  # another library version: applied untested

    @property
    def ok(self) -> bool:
        return not self.changed and not self.untested


# -- inspecting what a patch relies on -------------------------------------------------


def original(owner: Any, name: str) -> Any:
    """``owner.name`` as upstream defines it (``None`` if absent): what a patch replaced
    (kept as ``_har_upstream_<name>``), else the attribute itself; a classmethod,
    staticmethod or property as its function."""
    if not hasattr(owner, name):
        return None
    value = vars(owner).get(UPSTREAM + name) if hasattr(owner, "__dict__") else None
    if value is None:
        value = inspect.getattr_static(owner, name)
    if isinstance(value, property):
        return value.fget
    return getattr(value, "__func__", value)


def params(func: Any) -> tuple[str, ...]:
    """The names of ``func``'s parameters (``inspect.signature``)."""
    return tuple(inspect.signature(func).parameters)


def fingerprint(func: Any) -> str:
    """A short hash of ``func``'s source code (``inspect.getsource``)."""
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16]


def _qualname(owner: Any, name: str) -> str:
    return f"{getattr(owner, '__module__', '')}.{getattr(owner, '__qualname__', owner)}.{name}"


def _module_source(module: str) -> str:
    """A module's source text, read from its file without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(module)
    with open(spec.origin, encoding="utf-8") as f:
        return f.read()


@dataclass
class _Expect:
    """Collects what differs from what a patch expects."""

    found: list[str] = field(default_factory=list)

    def params(self, owner: Any, name: str, expected: tuple[str, ...]) -> Any:
        where = _qualname(owner, name)
        func = original(owner, name)
        if func is None:
            self.found.append(f"{where} is missing")
            return None
        try:
            got = params(func)
        except (TypeError, ValueError):
            self.found.append(f"{where} has no signature")
            return None
        if got != expected:
            self.found.append(
                f"{where}: parameters ({', '.join(expected)}) expected, found ({', '.join(got)})"
            )
        return func

    def source(self, owner: Any, name: str, expected: tuple[str, ...], recorded: str) -> None:
        """Parameters as expected and the source's fingerprint as recorded for WRITTEN_FOR."""
        func = self.params(owner, name, expected)
        if func is None:
            return
        got = fingerprint(func)
        if got != recorded:
            self.found.append(
                f"{_qualname(owner, name)}: source changed (fingerprint {recorded} of "
                f"{WRITTEN_FOR} expected, found {got})"
            )

    def calls(self, where: str, text: str, *needles: str) -> None:
        """``text`` (source code at ``where``) still contains each of ``needles``."""
        for needle in needles:
            if needle not in text:
                self.found.append(f"{where} no longer contains {needle!r}")

    def calls_in(self, owner: Any, name: str, *needles: str) -> None:
        func = original(owner, name)
        if func is None:
            self.found.append(f"{_qualname(owner, name)} is missing")
            return
        self.calls(_qualname(owner, name), inspect.getsource(func), *needles)

    def attribute(self, owner: Any, name: str) -> None:
        if not hasattr(owner, name):
            self.found.append(f"{_qualname(owner, name)} is missing")

    def true(self, condition: bool, what: str) -> None:
        if not condition:
            self.found.append(what)


# -- the checks, one per patch -----------------------------------------------------------

#: Fingerprints (:func:`fingerprint`) of the upstream code the patches copy, on WRITTEN_FOR.
FINGERPRINTS: dict[str, str] = {
    "TimeoutMiddleware.__call__": "fd8b9e3da28ed2b4",
    "JSONSerde.parse_request": "3ea0d77b4084d1be",
    "MultipartSerde.parse_request": "65de1b4c289aac56",
    "IOMixin.mime_type": "babaa4832e83deb7",
}


def _check_traffic_timers() -> list[str]:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    e = _Expect()
    e.params(TimeoutMiddleware, "__init__", ("self", "app", "timeout"))
    e.params(TimeoutMiddleware, "_set_timer_out", ("self", "waiter"))
    e.source(
        TimeoutMiddleware,
        "__call__",
        ("self", "scope", "receive", "send"),
        FINGERPRINTS["TimeoutMiddleware.__call__"],
    )
    return e.found


def _check_metric_labels() -> list[str]:
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as M

    e = _Expect()
    e.params(M, "_setup", ("self", "metrics_client", "duration_buckets"))
    e.calls_in(M, "_setup", '"endpoint"')  # its metrics are labelled by endpoint
    # the label is the raw path, passed by keyword; the app it wraps is self.app
    e.calls_in(M, "__call__", 'endpoint = scope["path"]', "endpoint=endpoint", "self._setup()")
    e.calls_in(M, "__init__", "self.app = app")
    return e.found


def _check_dispatcher() -> list[str]:
    from bentoml._internal.marshal.dispatcher import CorkDispatcher, Optimizer

    e = _Expect()
    e.params(Optimizer, "log_outbound", ("self", "n", "wait", "duration"))
    e.calls(
        "bentoml._internal.marshal.dispatcher.CorkDispatcher",
        inspect.getsource(CorkDispatcher),
        "self.optimizer.log_outbound(",
        "self.optimizer.wait",
    )
    return e.found


def _check_media_types() -> list[str]:
    from _bentoml_sdk.io_models import IOMixin

    e = _Expect()
    e.true(
        isinstance(vars(IOMixin).get("mime_type"), classmethod),
        "_bentoml_sdk.io_models.IOMixin.mime_type is no longer a classmethod",
    )
    e.source(IOMixin, "mime_type", ("cls",), FINGERPRINTS["IOMixin.mime_type"])
    return e.found


def _check_tracing() -> list[str]:
    from _bentoml_impl.server import app
    from opentelemetry.instrumentation import asgi

    e = _Expect()
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


def _check_client_errors() -> list[str]:
    from _bentoml_impl import serde
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.io_models import IOMixin

    e = _Expect()
    request = ("self", "request", "cls")
    e.source(serde.JSONSerde, "parse_request", request, FINGERPRINTS["JSONSerde.parse_request"])
    e.source(
        serde.MultipartSerde,
        "parse_request",
        request,
        FINGERPRINTS["MultipartSerde.parse_request"],
    )
    e.params(serde.MultipartSerde, "ensure_file", ("obj",))
    e.params(serde.JSONSerde, "deserialize_model", ("self", "payload", "cls"))
    for name in ("Payload", "is_union_type", "is_list_type", "get_args"):
        e.attribute(serde, name)
    media = getattr(serde, "ALL_SERDE", {})
    for media_type, cls in (
        ("application/json", serde.JSONSerde),
        ("multipart/form-data", serde.MultipartSerde),
        ("application/x-www-form-urlencoded", serde.MultipartSerde),
    ):
        e.true(media.get(media_type) is cls, f"ALL_SERDE[{media_type!r}] is not {cls.__name__}")
    e.params(IOMixin, "from_http_request", ("cls", "request", "serde"))
    e.calls_in(IOMixin, "from_http_request", "serde.parse_request(request")
    e.params(ServiceAppFactory, "api_endpoint", ("self", "name", "request"))
    e.calls_in(ServiceAppFactory, "api_endpoint", ".from_http_request(request, serde)")
    e.calls_in(ServiceAppFactory, "api_endpoint_wrapper", "await self.api_endpoint(name, request)")
    return e.found


def _check_graceful_stop() -> list[str]:
    import uvicorn
    from bentoml._internal.container import BentoMLContainer
    from bentoml._internal.context import server_context

    e = _Expect()
    server = uvicorn.Server
    e.params(server, "handle_exit", ("self", "sig", "frame"))
    e.params(server, "on_tick", ("self", "counter"))
    e.params(server, "shutdown", ("self", "sockets"))
    e.calls_in(server, "main_loop", "await self.on_tick(counter)")
    e.calls_in(server, "capture_signals", "self.handle_exit")
    e.calls_in(server, "_serve", "await self.shutdown(sockets=sockets)")
    e.calls_in(server, "__init__", "self.should_exit")
    e.calls(
        "_bentoml_impl.worker.service",
        _module_source("_bentoml_impl.worker.service"),
        "uvicorn.Server(config).run(",
    )
    e.attribute(BentoMLContainer, "remote_runner_mapping")
    e.attribute(server_context, "service_type")
    return e.found


def _check_docs_page() -> list[str]:
    import attrs
    import bentoml
    from bentoml._internal.service.openapi import specification as spec
    from bentoml._internal.utils.cattr import bentoml_cattr

    e = _Expect()
    e.true(
        isinstance(inspect.getattr_static(bentoml.Service, "openapi_spec", None), property),
        "bentoml.Service.openapi_spec is no longer a property",
    )
    e.attribute(bentoml_cattr, "unstructure")
    for name, fields in (
        ("OpenAPISpecification", {"info", "paths", "tags", "components"}),
        ("Info", {"title", "version", "description"}),
        ("Tag", {"name", "description"}),
        ("PathItem", {"get", "post"}),
        ("Operation", {"tags", "summary", "description"}),
    ):
        cls = getattr(spec, name, None)
        has = {f.name for f in attrs.fields(cls)} if cls is not None and attrs.has(cls) else set()
        missing = sorted(fields - has)
        e.true(not missing, f"{spec.__name__}.{name} lacks the attrs fields {missing}")
    fields_of_service = {f.name for f in attrs.fields(bentoml.Service)}
    e.true("dependencies" in fields_of_service, "bentoml.Service has no 'dependencies' field")
    return e.found


def _install_graceful_stop() -> None:
    import uvicorn

    if not getattr(uvicorn.Server, "_har_graceful", False):
        for name in ("handle_exit", "on_tick", "shutdown"):
            setattr(uvicorn.Server, UPSTREAM + name, vars(uvicorn.Server)[name])
    graceful.install()


# -- the registry ----------------------------------------------------------------------

PATCHES: tuple[Patch, ...] = (
    Patch(
        name="traffic-timers",
        what="bentoml._internal.server.http.traffic.TimeoutMiddleware.__call__: upstream's "
        "code, with the timer cancelled when the request ends "
        "(bentoml_compat.cancel_traffic_timers)",
        why="the per-request `call_later` timer is never cancelled: every finished request "
        "stays on the event loop (with its context and span) for the traffic timeout",
        upstream="none found",
        loses="API worker memory (~250 MB at 400 req/s with the 120 s timeout) and ~25 % of "
        "HTTP throughput after a few minutes of load",
        until="BentoML cancels the timer (tests/unit/test_bentoml_workarounds.py's upstream "
        "test fails then)",
        required=False,
        check=_check_traffic_timers,
        apply=bentoml_compat.cancel_traffic_timers,
    ),
    Patch(
        name="metric-labels",
        what="bentoml._internal.server.http.instruments.RunnerTrafficMetricsMiddleware._setup: "
        "its metrics' `endpoint` label becomes the route template, `<unmatched>` for unknown "
        "paths (bentoml_compat.bound_metric_labels)",
        why="BentoML labels request metrics with the raw URL path",
        upstream="none found",
        loses="a bound on /metrics: every distinct unknown path a client sends adds series "
        "(300 random 404 paths: 6,000 series), memory and scrape size without limit",
        until="BentoML labels by route template",
        required=True,
        check=_check_metric_labels,
        apply=bentoml_compat.bound_metric_labels,
    ),
    Patch(
        name="dispatcher-wait",
        what="bentoml._internal.marshal.dispatcher.Optimizer.log_outbound: every batch is "
        "logged as having waited 0 s (bentoml_compat.dispatch_without_idle_wait)",
        why="the adaptive batcher learns a wait from past batches and holds a lone request "
        "back that long, although the API worker already merges concurrent callers",
        upstream="none found",
        loses="~10 % of throughput at 64 connections (HTTP 1.10x, gRPC 1.11x in load_tests/AB.md)",
        until="the API worker stops coalescing, or BentoML's batcher stops idling",
        required=False,
        check=_check_dispatcher,
        apply=bentoml_compat.dispatch_without_idle_wait,
    ),
    Patch(
        name="media-types",
        what="_bentoml_sdk.io_models.IOMixin.mime_type: computed once per class "
        "(bentoml_compat.cache_media_types)",
        why="computed on every response, building a pydantic JSON schema each time",
        upstream="none found",
        loses="~5 % of the model worker's time at 1 connection",
        until="BentoML caches it",
        required=False,
        check=_check_media_types,
        apply=bentoml_compat.cache_media_types,
    ),
    Patch(
        name=TRACING,
        what="opentelemetry.instrumentation.asgi.OpenTelemetryMiddleware is a pass-through "
        "when BentoML builds its apps (bentoml_compat.disable_request_tracing; not applied "
        "with HAR_TRACING=1)",
        why="BentoML wraps every request in OpenTelemetry spans whatever its tracing "
        "configuration, even when they are never sampled",
        upstream="none found",
        loses="CPU on every request (a server span and one span per receive/send message)",
        until="BentoML skips the middleware when tracing is off",
        required=False,
        check=_check_tracing,
        apply=bentoml_compat.disable_request_tracing,
    ),
    Patch(
        name="client-errors",
        what="_bentoml_impl.serde.JSONSerde / MultipartSerde.parse_request (upstream's code "
        "without the URL download), MultipartSerde.ensure_file (refuses strings), "
        "IOMixin.from_http_request and ServiceAppFactory.api_endpoint (wrapped: parse errors "
        "become 4xx in our words, an unreachable model a 503) (bentoml_requests.install)",
        why="BentoML answers client mistakes in a body with a 500 or pydantic's own 400, "
        "logs each at ERROR with a traceback, and downloads any string sent in place of a file",
        upstream="none found",
        loses="client mistakes answered 4xx in our words (a malformed multipart body becomes "
        "a 500), a 503 with Retry-After while the model restarts, and the refusal to fetch "
        "URLs named by clients (server-side request forgery)",
        until="BentoML maps parse errors to 4xx and stops fetching URLs from request bodies",
        required=True,
        check=_check_client_errors,
        apply=bentoml_requests.install,
    ),
    Patch(
        name="graceful-stop",
        what="uvicorn.Server.handle_exit / on_tick / shutdown, in BentoML's workers: the model "
        "worker keeps serving until the API workers are done, the API worker begins its gRPC "
        "stop with the HTTP drain (har/graceful.py; relies on BentoMLContainer."
        "remote_runner_mapping and server_context.service_type)",
        why="BentoML sends SIGTERM to every worker at once: the model worker exits while the "
        "API worker still has requests for it",
        upstream="none found",
        loses="requests in flight at a stop (rolling update, scale-down) answered 503 / "
        "UNAVAILABLE instead of served",
        until="BentoML stops dependencies after their callers",
        required=True,
        check=_check_graceful_stop,
        apply=_install_graceful_stop,
        written_for={"bentoml": WRITTEN_FOR, "uvicorn": UVICORN_WRITTEN_FOR},
    ),
    Patch(
        name="docs-page",
        what="har/openapi.py rewrites BentoML's OpenAPI document with the attrs classes of "
        "bentoml._internal.service.openapi.specification and bentoml_cattr (patches nothing)",
        why="the document's title, version, description and tags cannot be set publicly",
        upstream="none found",
        loses="the docs page (GET /, /docs.json) may fail with a 500 or show BentoML's defaults",
        until="BentoML lets a service set its OpenAPI info and tags",
        required=False,
        check=_check_docs_page,
        apply=None,
    ),
)


# -- the guard -------------------------------------------------------------------------


def _installed(library: str) -> str:
    return str(getattr(importlib.import_module(library), "__version__", "unknown"))


def examine(patch: Patch) -> Verdict:
    """Check ``patch`` against the installed libraries (applies nothing)."""
    untested = tuple(
        f"{lib} {want} expected, {got} installed"
        for lib, want in patch.written_for.items()
        if (got := _installed(lib)) != want
    )
    try:
        changed = tuple(patch.check())
    except Exception as exc:  # an import or attribute the check needs is gone
        changed = (f"the check failed: {type(exc).__name__}: {exc}",)
    return Verdict(patch, changed, untested)


def describe(verdict: Verdict) -> str:
    """One line: the patch, what differs, whether it is applied and what is lost."""
    p = verdict.patch
    found = "; ".join(verdict.changed + verdict.untested)
    if verdict.changed:
        done = "NOT applied" if p.apply is not None else "relies on changed internals"
        return f"BentoML patch {p.name!r} {done} ({found}): without it, {p.loses}"
    done = "applied UNTESTED" if p.apply is not None else "relies on internals UNTESTED"
    return (
        f"BentoML patch {p.name!r} {done} ({found}; what it relies on has the expected "
        f"shape): if upstream changed its behaviour, {p.loses}"
    )


def refusal(verdicts: Iterable[Verdict], others: Iterable[str] = ()) -> str:
    """The message of a refused start (nothing is applied): the required patches that do
    not match, and the names of the ``others`` (not required) that do not either."""
    lines = [
        f"- {v.patch.name!r}: {'; '.join(v.changed + v.untested)}. Without it: {v.patch.loses}"
        for v in verdicts
    ]
    if others := list(others):
        lines.append(f"(also not matching, not required: {', '.join(others)})")
    return (
        f"refusing to start: patches of BentoML internals that the service's correctness "
        f"relies on were written and tested for bentoml=={WRITTEN_FOR} (graceful-stop also "
        f"for uvicorn=={UVICORN_WRITTEN_FOR}) and do not match what is installed:\n"
        + "\n".join(lines)
        + f"\nInstall the pinned versions (requirements.lock), or set {ALLOW_SETTING}=1 to "
        "start anyway: each such patch is then applied if what it replaces still has the "
        "expected shape, skipped otherwise, with a WARNING (docs/bentoml-patches.md)."
    )


def apply_patches(
    *, tracing: bool, allow_untested: bool, patches: Iterable[Patch] = PATCHES
) -> list[Verdict]:
    """Check every patch, then apply those whose targets have the expected shape.

    Args:
        tracing: BentoML's request tracing is wanted (``HAR_TRACING``): the tracing patch
            is left out.
        allow_untested: ``HAR_ALLOW_UNTESTED_BENTOML``: start even where a required patch
            does not match.

    Returns:
        The verdicts, in the order applied. One WARNING per patch that does not match.

    Raises:
        SystemExit: a required patch does not match and ``allow_untested`` is false
            (nothing is applied then).
    """
    chosen = [p for p in patches if not (tracing and p.name == TRACING)]
    verdicts = [examine(p) for p in chosen]
    refused = [v for v in verdicts if v.patch.required and not v.ok]
    if refused and not allow_untested:
        others = [v.patch.name for v in verdicts if not v.ok and not v.patch.required]
        raise SystemExit(refusal(refused, others))
    for v in verdicts:
        if not v.ok:
            logger.warning("%s", describe(v))
    for v in verdicts:
        if not v.changed and v.patch.apply is not None:
            v.patch.apply()
    return verdicts
