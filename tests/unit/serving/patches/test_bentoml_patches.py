"""har/serving/patches/: every patch of BentoML internals checked against the installed
BentoML, and the start-up guard that warns or refuses when they do not match.

The tests of what each patch relies on inspect the real installed BentoML (through
``original``, which sees what upstream defines even after the patch replaced it) with the
values recorded for ``WRITTEN_FOR`` written out here: they fail when an upgrade changes an
attribute, a signature, a call site or code a patch copies. The real-app tests serve a
small BentoML service through BentoML's own app (tests/unit/serving/patches/bentoml_probe_app.py), patched
and as upstream ships it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
from typing import Any

import bentoml
import pytest

from har.serving.patches import PATCHES, TRACING, apply_patches, metric_labels
from har.serving.patches.guard import (
    UVICORN_WRITTEN_FOR,
    WRITTEN_FOR,
    Patch,
    examine,
    fingerprint,
    module_source,
    original,
    params,
)
from tests.helpers.paths import ROOT
from tests.unit.serving.patches import bentoml_probe_app

BY_NAME = {p.name: p for p in PATCHES}
REQUIRED = {"metric-labels", "client-errors", "graceful-stop"}


def source(owner: Any, name: str) -> str:
    return inspect.getsource(original(owner, name))


# -- the registry and the versions --------------------------------------------------------


def test_the_registry_names_every_patch_once_with_its_docs() -> None:
    assert list(BY_NAME) == [
        "traffic-timers",
        "metric-labels",
        "dispatcher-wait",
        "media-types",
        "request-tracing",
        "client-errors",
        "graceful-stop",
        "docs-page",
    ]
    assert {p.name for p in PATCHES if p.required} == REQUIRED
    page = (ROOT / "docs" / "bentoml-patches.md").read_text(encoding="utf-8")
    for p in PATCHES:
        assert p.what and p.why and p.upstream and p.loses and p.until
        assert f"`{p.name}`" in page, f"docs/bentoml-patches.md lacks {p.name}"


def test_written_for_is_the_installed_and_pinned_bentoml() -> None:
    import uvicorn

    assert bentoml.__version__ == WRITTEN_FOR
    assert uvicorn.__version__ == UVICORN_WRITTEN_FOR
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(rf"^bentoml=={re.escape(WRITTEN_FOR)}\b", lock, re.M)
    assert re.search(rf"^uvicorn=={re.escape(UVICORN_WRITTEN_FOR)}\b", lock, re.M)


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_each_check_passes_on_the_installed_bentoml(patch: Patch) -> None:
    verdict = examine(patch)
    assert verdict.changed == () and verdict.untested == ()


def test_checks_still_see_upstream_after_the_patches() -> None:
    from _bentoml_impl.server.app import ServiceAppFactory

    apply_patches(tracing=False, allow_untested=False)
    assert ServiceAppFactory.api_endpoint is not original(ServiceAppFactory, "api_endpoint")
    assert "_bentoml_impl/server/app.py" in inspect.getsourcefile(
        original(ServiceAppFactory, "api_endpoint")
    ).replace("\\", "/")
    assert all(examine(p).ok for p in PATCHES)


# -- what each patch relies on, in the installed BentoML ------------------------------------


def test_traffic_timers_target() -> None:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware as T

    assert params(original(T, "__init__")) == ("self", "app", "timeout")
    assert params(original(T, "_set_timer_out")) == ("self", "waiter")
    assert params(original(T, "__call__")) == ("self", "scope", "receive", "send")
    # the patch is a copy of this code with the timer cancelled
    assert fingerprint(original(T, "__call__")) == "fd8b9e3da28ed2b4"
    assert "loop.call_later(self.timeout, self._set_timer_out, waiter)" in source(T, "__call__")


def test_metric_labels_target() -> None:
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as M

    assert params(original(M, "_setup")) == ("self", "metrics_client", "duration_buckets")
    # request duration, total and in progress, websocket connections, received and sent
    assert source(M, "_setup").count('"endpoint"') == 6
    call = source(M, "__call__")
    assert 'endpoint = scope["path"]' in call and "endpoint=endpoint" in call
    assert "self._setup()" in call and "self.app = app" in source(M, "__init__")


def test_metric_labels_relies_on_prometheus_label_names() -> None:
    from prometheus_client import Counter

    metric = Counter("har_probe", "probe", ["endpoint", "service_name"], registry=None)
    assert metric._labelnames == ("endpoint", "service_name")
    assert params(metric.labels) == ("labelvalues", "labelkwargs")


def test_dispatcher_wait_target() -> None:
    from bentoml._internal.marshal.dispatcher import CorkDispatcher, Optimizer

    assert params(original(Optimizer, "log_outbound")) == ("self", "n", "wait", "duration")
    cork = inspect.getsource(CorkDispatcher)
    assert "self.optimizer.log_outbound(" in cork and "self.optimizer.wait" in cork
    assert "self.wait = max(0, _o_w)" in source(Optimizer, "trigger_refresh")


def test_media_types_target() -> None:
    from _bentoml_sdk.io_models import IOMixin

    assert params(original(IOMixin, "mime_type")) == ("cls",)
    # the cache is right only while the answer depends on the class alone
    assert fingerprint(original(IOMixin, "mime_type")) == "babaa4832e83deb7"


def test_request_tracing_target() -> None:
    from _bentoml_impl.server import app
    from opentelemetry.instrumentation import asgi

    assert hasattr(asgi, "OpenTelemetryMiddleware")
    middlewares = source(app.ServiceAppFactory, "middlewares")
    assert "from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware" in middlewares
    assert not hasattr(app, "OpenTelemetryMiddleware")  # looked up when each app is built


def test_client_errors_targets() -> None:
    from _bentoml_impl import serde
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.io_models import IOMixin

    # copied (without the URL download / with text fields read by form_value)
    assert params(original(serde.JSONSerde, "parse_request")) == ("self", "request", "cls")
    assert fingerprint(original(serde.JSONSerde, "parse_request")) == "3ea0d77b4084d1be"
    assert params(original(serde.MultipartSerde, "parse_request")) == ("self", "request", "cls")
    assert fingerprint(original(serde.MultipartSerde, "parse_request")) == "65de1b4c289aac56"
    # replaced
    assert isinstance(vars(serde.MultipartSerde)["_har_upstream_ensure_file"], staticmethod)
    assert params(original(serde.MultipartSerde, "ensure_file")) == ("obj",)
    # called by the copies
    assert params(original(serde.JSONSerde, "deserialize_model")) == ("self", "payload", "cls")
    assert all(hasattr(serde, n) for n in ("Payload", "is_union_type", "is_list_type", "get_args"))
    assert serde.ALL_SERDE["application/json"] is serde.JSONSerde
    assert serde.ALL_SERDE["multipart/form-data"] is serde.MultipartSerde
    assert serde.ALL_SERDE["application/x-www-form-urlencoded"] is serde.MultipartSerde
    # wrapped
    assert params(original(IOMixin, "from_http_request")) == ("cls", "request", "serde")
    assert "serde.parse_request(request" in source(IOMixin, "from_http_request")
    assert params(original(ServiceAppFactory, "api_endpoint")) == ("self", "name", "request")
    assert ".from_http_request(request, serde)" in source(ServiceAppFactory, "api_endpoint")
    wrapper = source(ServiceAppFactory, "api_endpoint_wrapper")
    assert "await self.api_endpoint(name, request)" in wrapper


def test_graceful_stop_targets() -> None:
    import uvicorn
    from bentoml._internal.container import BentoMLContainer
    from bentoml._internal.context import server_context

    server = uvicorn.Server
    assert params(original(server, "handle_exit")) == ("self", "sig", "frame")
    assert params(original(server, "on_tick")) == ("self", "counter")
    assert params(original(server, "shutdown")) == ("self", "sockets")
    assert "await self.on_tick(counter)" in source(server, "main_loop")
    assert "self.handle_exit" in source(server, "capture_signals")
    assert "await self.shutdown(sockets=sockets)" in source(server, "_serve")
    worker = module_source("_bentoml_impl.worker.service")
    assert "uvicorn.Server(config).run(" in worker
    assert hasattr(BentoMLContainer, "remote_runner_mapping")
    assert hasattr(server_context, "service_type")


def test_docs_page_targets() -> None:
    import attrs
    from bentoml._internal.service.openapi import specification as spec
    from bentoml._internal.utils.cattr import bentoml_cattr

    assert isinstance(inspect.getattr_static(bentoml.Service, "openapi_spec"), property)
    assert {"title", "version", "description"} <= {f.name for f in attrs.fields(spec.Info)}
    assert {"name", "description"} <= {f.name for f in attrs.fields(spec.Tag)}
    fields = {f.name for f in attrs.fields(spec.OpenAPISpecification)}
    assert {"info", "paths", "tags", "components"} <= fields
    assert callable(bentoml_cattr.unstructure)


# -- the patches on BentoML's real app ------------------------------------------------------


@pytest.fixture(scope="module")
def patched() -> dict[str, Any]:
    return bentoml_probe_app.run("patched")


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    return bentoml_probe_app.run("upstream")


def test_real_app_answers_client_mistakes_in_our_words(patched, upstream) -> None:
    assert patched["echo"] == upstream["echo"] == [200, "hihi"]
    assert patched["not_json"] == [400, '{"error":"invalid request: the body is not valid JSON"}']
    assert patched["missing_field"] == [400, '{"error":"invalid request: \'text\' is required"}']
    assert patched["no_boundary"] == [
        400,
        '{"error":"multipart/form-data needs a boundary parameter"}',
    ]
    status, body = patched["upload_as_url"]
    assert status == 400 and "an upload field must be a file" in body
    assert patched["unavailable"] == [
        503,
        '{"error":"the model is unavailable; retry shortly"}',
        "2",
    ]
    # as BentoML 1.4.40 ships: pydantic's messages, 500s, and an attempt to fetch the URL
    assert "pydantic" in upstream["not_json"][1]
    assert upstream["no_boundary"][0] == 500 and upstream["unavailable"][0] == 500
    assert "an upload field must be a file" not in upstream["upload_as_url"][1]


def test_real_app_labels_unknown_paths_as_one(patched, upstream) -> None:
    def endpoints(series: list[str]) -> set[str]:
        return {re.search(r'endpoint="([^"]*)"', s).group(1) for s in series}  # type: ignore[union-attr]

    assert endpoints(patched["request_total"]) == {"/echo", "/size", "/unavailable", "<unmatched>"}
    assert {"/random-0/x", "/random-1/x", "/random-2/x"} <= endpoints(upstream["request_total"])


def test_real_app_leaves_no_traffic_timer_behind(patched, upstream) -> None:
    assert patched["live_traffic_timers"] == 0
    assert upstream["live_traffic_timers"] == 10  # one per request above, for 60 s each


# -- the guard ------------------------------------------------------------------------------


def ours(caplog: Any) -> list[str]:
    """The WARNING lines of the guard (logger ``har.bentoml``)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "har.bentoml" and r.levelno == logging.WARNING
    ]


def spied(calls: list[str], patches: Any = PATCHES) -> list[Patch]:
    """The registry with each ``apply`` recording its name instead of patching."""
    return [dataclasses.replace(p, apply=lambda n=p.name: calls.append(n)) for p in patches]


def test_the_installed_bentoml_applies_everything_quietly(caplog) -> None:
    calls: list[str] = []
    with caplog.at_level(logging.WARNING, logger="har.bentoml"):
        verdicts = apply_patches(tracing=False, allow_untested=False, patches=spied(calls))
    assert all(v.ok for v in verdicts) and ours(caplog) == []
    assert calls == [p.name for p in PATCHES]


def test_tracing_on_leaves_the_tracing_patch_out() -> None:
    calls: list[str] = []
    apply_patches(tracing=True, allow_untested=False, patches=spied(calls))
    assert TRACING not in calls and len(calls) == len(PATCHES) - 1


def test_another_bentoml_version_refuses_to_start(monkeypatch, caplog) -> None:
    monkeypatch.setattr(bentoml, "__version__", "1.4.41")
    calls: list[str] = []
    with pytest.raises(SystemExit) as info, caplog.at_level(logging.WARNING):
        apply_patches(tracing=False, allow_untested=False, patches=spied(calls))
    message = str(info.value)
    assert message.startswith("refusing to start")
    for name in REQUIRED:
        assert f"'{name}': bentoml 1.4.40 expected, 1.4.41 installed. Without it: " in message
    assert "HAR_ALLOW_UNTESTED_BENTOML=1" in message
    others = "traffic-timers, dispatcher-wait, media-types, request-tracing, docs-page"
    assert f"(also not matching, not required: {others})" in message
    assert calls == []  # nothing applied


def test_another_version_allowed_warns_once_per_patch_and_applies(monkeypatch, caplog) -> None:
    monkeypatch.setattr(bentoml, "__version__", "1.4.41")
    calls: list[str] = []
    with caplog.at_level(logging.WARNING, logger="har.bentoml"):
        apply_patches(tracing=False, allow_untested=True, patches=spied(calls))
    assert calls == [p.name for p in PATCHES]  # the shapes match: applied, untested
    warnings = ours(caplog)
    assert len(warnings) == len(PATCHES)
    for p, text in zip(PATCHES, warnings, strict=True):
        assert text.startswith(f"BentoML patch {p.name!r} ")
        assert "UNTESTED (bentoml 1.4.40 expected, 1.4.41 installed" in text
        assert text.endswith(p.loses)


def test_another_uvicorn_makes_only_the_graceful_stop_untested(monkeypatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "__version__", "0.99.0")
    untested = {p.name: examine(p).untested for p in PATCHES}
    assert untested["graceful-stop"] == ("uvicorn 0.54.0 expected, 0.99.0 installed",)
    assert all(v == () for k, v in untested.items() if k != "graceful-stop")


def test_a_missing_attribute_refuses_a_required_patch(monkeypatch, caplog) -> None:
    from _bentoml_impl.server.app import ServiceAppFactory

    monkeypatch.delattr(ServiceAppFactory, "api_endpoint")
    calls: list[str] = []
    with pytest.raises(SystemExit, match=r"ServiceAppFactory\.api_endpoint is missing"):
        apply_patches(tracing=False, allow_untested=False, patches=spied(calls))
    assert calls == []
    with caplog.at_level(logging.WARNING, logger="har.bentoml"):
        apply_patches(tracing=False, allow_untested=True, patches=spied(calls))
    assert "client-errors" not in calls and len(calls) == len(PATCHES) - 1
    (warning,) = ours(caplog)
    assert warning.startswith("BentoML patch 'client-errors' NOT applied (")
    assert "api_endpoint is missing" in warning and "without it, client mistakes" in warning


def test_a_changed_signature_skips_a_patch_with_a_warning(monkeypatch, caplog) -> None:
    from bentoml._internal.marshal.dispatcher import Optimizer

    def log_outbound(self: Any, n: int, duration: float) -> None: ...

    monkeypatch.setattr(Optimizer, "_har_upstream_log_outbound", log_outbound, raising=False)
    calls: list[str] = []
    with caplog.at_level(logging.WARNING, logger="har.bentoml"):
        apply_patches(tracing=False, allow_untested=False, patches=spied(calls))  # no refusal
    assert "dispatcher-wait" not in calls and len(calls) == len(PATCHES) - 1
    (warning,) = ours(caplog)
    assert "Optimizer.log_outbound: parameters (self, n, wait, duration) expected, " in warning
    assert "found (self, n, duration)" in warning and "NOT applied" in warning


def test_changed_copied_code_refuses(monkeypatch) -> None:
    from _bentoml_impl import serde

    async def parse_request(self: Any, request: Any, cls: Any) -> Any:
        return None  # same signature, other code

    monkeypatch.setattr(
        serde.JSONSerde, "_har_upstream_parse_request", parse_request, raising=False
    )
    with pytest.raises(SystemExit) as info:
        apply_patches(tracing=False, allow_untested=False, patches=spied([]))
    assert "JSONSerde.parse_request: source changed (fingerprint 3ea0d77b4084d1be of " in str(
        info.value
    )


def test_a_check_that_cannot_run_counts_as_changed() -> None:
    def broken() -> list[str]:
        raise ImportError("No module named '_bentoml_impl'")

    verdict = examine(dataclasses.replace(BY_NAME["media-types"], check=broken))
    assert verdict.changed == ("the check failed: ImportError: No module named '_bentoml_impl'",)


def test_metric_labels_warn_instead_of_doing_nothing(caplog) -> None:
    """Patched, BentoML's metrics middleware says so when it finds nothing to bound."""
    from types import SimpleNamespace

    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as M

    metric_labels.bound_metric_labels()

    def metric(*_: Any, labelnames: Any = (), **__: Any) -> Any:
        return SimpleNamespace(labels=lambda **k: SimpleNamespace(), _labelnames=tuple(labelnames))

    client = SimpleNamespace(Histogram=metric, Counter=metric, Gauge=metric, Summary=metric)

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    def bare(*_: Any, **__: Any) -> Any:  # a metric without prometheus_client's _labelnames
        return SimpleNamespace(labels=lambda **k: SimpleNamespace())

    unlabelled = SimpleNamespace(Histogram=bare, Counter=bare, Gauge=bare, Summary=bare)
    with caplog.at_level(logging.WARNING, logger="har.bentoml"):
        M(app)._setup(metrics_client=client, duration_buckets=(1.0,))  # no router below
        M(SimpleNamespace(routes=[]))._setup(metrics_client=unlabelled, duration_buckets=(1.0,))
    messages = ours(caplog)
    assert len(messages) == 2
    assert "found no router below BentoML's metrics middleware" in messages[0]
    assert "found no metric labelled 'endpoint'" in messages[1]
