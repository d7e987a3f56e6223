"""What each BentoML worker of ``service.py`` builds from the settings, testable without it.

``service.py`` declares the services and endpoints; at import it calls :func:`configure`,
and their ``__init__``, start-up and shutdown hooks call the rest:

* :func:`configure`: the BentoML patches, the model to serve (found or stored), tokens,
  TLS and the shadow's tag;
* :func:`~har.serving.model_worker.model_worker` (its own module): the model service's model
  (or, with ``HAR_MODEL_PLACEMENT=in-process``, each API worker's own);
* :class:`ApiWorker`: the API service's core (:class:`~har.core.scorer.Scorer` through a
  coalescing :class:`~har.serving.model_client.ModelClient`), its monitor, the optional shadow,
  the HTTP endpoint logic and the gRPC server's start and stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from har import lifecycle
from har.core.access import Access
from har.core.open_inference import InferenceModel
from har.core.scorer import served_scorer
from har.domain.errors import InputError
from har.grpc import service as grpc_service
from har.grpc.observability import ObservabilityInterceptor
from har.grpc.tls import GrpcTLS, grpc_server_credentials
from har.http.endpoints import HttpApi
from har.http.v2 import V2Http
from har.monitoring.metrics import SHADOW, grpc_metrics, model_call_metrics
from har.runtime import model_store
from har.runtime.onnx_model import RuntimeChoice, choose_runtime
from har.serving import graceful, patches, workers
from har.serving.model_client import ModelClient, model_ready, observed, retrying
from har.serving.model_worker import InProcessModel, in_process_model
from har.settings import Settings
from har.shadow import attach as attach_shadow
from har.shadow import resolve_shadow_tag

ModelCall = Callable[[np.ndarray], Awaitable[np.ndarray]]

#: Shared by both services: one worker each, generous timeout and concurrency, no access log.
SERVICE_CONFIG: dict[str, Any] = {
    "workers": 1,
    "traffic": {"timeout": 120, "max_concurrency": 4096},
    "logging": {"access": {"enabled": False}},
}


def api_service_config(settings: Settings) -> dict[str, Any]:
    """The API service's BentoML config: :data:`SERVICE_CONFIG` with ``HAR_API_WORKERS``
    workers (they share the HTTP socket, gRPC binds with ``SO_REUSEPORT``), and
    :func:`tracing_config`."""
    return {**model_service_config(settings), "workers": settings.api_workers}


def model_service_config(settings: Settings) -> dict[str, Any]:
    """The model service's BentoML config: :data:`SERVICE_CONFIG` and :func:`tracing_config`."""
    return {**SERVICE_CONFIG, **tracing_config(settings)}


def tracing_config(settings: Settings) -> dict[str, Any]:
    """BentoML's ``tracing`` section for ``HAR_TRACING``: an OTLP/HTTP (protobuf) exporter
    to ``HAR_TRACING_ENDPOINT``, parent-based sampling at ``HAR_TRACING_SAMPLE_RATE``
    (empty when tracing is off: BentoML's default, no exporter, nothing sampled)."""
    if not settings.tracing:
        return {}
    return {
        "tracing": {
            "exporter_type": "otlp",
            "sample_rate": settings.tracing_sample_rate,
            "otlp": {"protocol": "http", "endpoint": settings.tracing_endpoint},
        }
    }


@dataclass(frozen=True)
class Configured:
    """The service's settings with ``model_tag`` resolved, and what follows from them."""

    settings: Settings
    access: Access  # bearer tokens (off unless HAR_API_TOKENS*)
    tls: GrpcTLS | None  # gRPC TLS (off unless HAR_GRPC_TLS_*)
    shadow_tag: str | None  # off unless HAR_SHADOW_MODEL_TAG / _URI


def configure(settings: Settings) -> Configured:
    """Run at import of ``service.py`` (in every worker process): patch BentoML, resolve
    the model this service is configured for (``HAR_MODEL_URI``, else ``HAR_MODEL_TAG``),
    found or stored now so that a plain ``bentoml serve`` works and every worker serves
    this one tag, and read tokens, TLS and the shadow."""
    # every patch of BentoML internals, checked against the BentoML it was written for
    # (refuses to start where a required one does not match): har/serving/patches/
    patches.apply_patches(tracing=settings.tracing, allow_untested=settings.allow_untested_bentoml)
    workers.die_with_supervisor()  # workers never outlive `bentoml serve`
    tag = lifecycle.ensure_served_model(settings)
    shadow_tag = resolve_shadow_tag(settings)
    require_shadow_in_bento(shadow_tag, os.environ.get("BENTO_PATH"))
    for t in filter(None, (tag, shadow_tag)):  # refuse now, not in a restarting model worker
        require_runtime(
            settings.runtime, t, in_process=t == tag and settings.model_placement == "in-process"
        )
    pin_resolved_models(settings, tag, shadow_tag)
    settings = settings.model_copy(update={"model_tag": tag, "model_uri": None})
    return Configured(
        settings, Access.from_settings(settings), GrpcTLS.from_settings(settings), shadow_tag
    )


#: The shadow model's BentoML service (``service.py``).
SHADOW_SERVICE = "har-shadow"


def require_shadow_in_bento(shadow_tag: str | None, bento_path: str | None) -> None:
    """Refuse, in words, a shadow model that the Bento being served was built without.

    A Bento (and so the image) fixes its services when it is built; ``service.py`` adds the
    shadow's service only when a shadow is configured. Served from a Bento (``BENTO_PATH``,
    as in the image) built without one, BentoML's loader would fail with a bare
    ``StopIteration``; this says what to do instead.

    Raises:
        SystemExit: ``shadow_tag`` is set and the Bento's ``bento.yaml`` has no shadow service.
    """
    if not shadow_tag or not bento_path:
        return
    spec = Path(bento_path) / "bento.yaml"
    if not spec.is_file():
        return
    services = {s.get("name") for s in yaml.safe_load(spec.read_text()).get("services") or []}
    if SHADOW_SERVICE not in services:
        raise SystemExit(
            f"a shadow model is configured ({shadow_tag}) but this Bento was built without "
            "one: unset HAR_SHADOW_MODEL_TAG / HAR_SHADOW_MODEL_URI, or build the image with "
            "the shadow configured (HAR_SHADOW_MODEL_URI=... make image)"
        )


def require_runtime(setting: str, tag: str, *, in_process: bool = False) -> RuntimeChoice:
    """The runtime the stored model ``tag`` will serve on; refuses (``SystemExit``, before any
    worker starts) when ``HAR_RUNTIME=onnx`` has no passing export to serve, when the choice
    is TensorFlow and ``in_process`` (``HAR_MODEL_PLACEMENT=in-process``: the API workers
    never load TensorFlow), or when the choice is TensorFlow and TensorFlow is not installed
    (an image built for ONNX Runtime)."""
    import importlib.util

    resolved, folder, card = model_store.load_card(tag)
    try:
        choice = choose_runtime(setting, card, folder)
    except InputError as exc:
        raise SystemExit(f"model {resolved}: {exc}") from None
    if choice.runtime == "tensorflow" and in_process:
        raise SystemExit(
            f"HAR_MODEL_PLACEMENT=in-process runs the model on ONNX Runtime in the API "
            f"workers, but model {resolved} would serve on TensorFlow ({choice.reason}): unset "
            "HAR_MODEL_PLACEMENT, or serve a model whose ONNX export passed"
        )
    if choice.runtime == "tensorflow" and importlib.util.find_spec("tensorflow") is None:
        raise SystemExit(
            f"model {resolved} would serve on TensorFlow ({choice.reason}), which is not "
            "installed here: an image built for ONNX Runtime has none; unset "
            "HAR_RUNTIME=tensorflow, or build the image with it (HAR_RUNTIME=tensorflow make image)"
        )
    return choice


def pin_resolved_models(settings: Settings, tag: str, shadow_tag: str | None) -> None:
    """Replace registry URIs by the tags they resolved to, in this process's environment.

    ``bentoml serve`` imports ``service.py`` in its supervisor first and starts (and
    restarts) every worker with a copy of the supervisor's environment: with the tags
    pinned there, a worker restarted after a promotion serves the version resolved at
    start, as ``GET /model`` says, instead of the alias's new holder.
    """
    if settings.model_uri:
        os.environ["HAR_MODEL_TAG"] = tag
        os.environ.pop("HAR_MODEL_URI", None)
    if settings.shadow_model_uri and shadow_tag:
        os.environ["HAR_SHADOW_MODEL_TAG"] = shadow_tag
        os.environ.pop("HAR_SHADOW_MODEL_URI", None)


def add_middleware(service: Any, config: Configured) -> None:
    """The API service's ASGI middleware: tokens (outermost, first), then body bounds."""
    from har.core.access import BearerAuthMiddleware
    from har.http.endpoints import BodySizeLimitMiddleware

    service.add_asgi_middleware(BearerAuthMiddleware, access=config.access)
    service.add_asgi_middleware(
        BodySizeLimitMiddleware,
        max_bytes=config.settings.max_request_bytes,
        read_timeout_s=config.settings.body_read_timeout_s,
    )


def api_tracer(settings: Settings) -> Any:
    """The OpenTelemetry tracer of this worker's gRPC and model-call spans: from the tracer
    provider BentoML built from :func:`tracing_config` (the one its HTTP spans use, so
    they share its exporter and sampler); ``None`` when ``HAR_TRACING`` is off."""
    if not settings.tracing:
        return None
    from bentoml._internal.configuration.containers import BentoMLContainer

    provider = BentoMLContainer.tracer_provider.get()
    return provider.get_tracer("har")


class ApiWorker:
    """One API worker's objects.

    Args:
        settings: the service's settings (``model_tag`` already resolved).
        batched, unbatched: the model service's adaptively batched and plain methods.
        shadow_tag: stored tag of the shadow model (``None``: no shadow).
        shadow_call: the shadow service's batched method (used only with ``shadow_tag``).
        worker_index: BentoML's worker index (names this worker's profiles).
        runtime_call: the model service's ``runtime`` method (:meth:`ServedModel.info`).
        ready: the service's readiness check (the Open Inference Protocol's ready
            endpoints answer it); ``None``: always ready.
    """

    def __init__(
        self,
        settings: Settings,
        batched: ModelCall,
        unbatched: ModelCall,
        *,
        shadow_tag: str | None,
        shadow_call: ModelCall,
        worker_index: int,
        runtime_call: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        ready: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.settings = settings
        self.tracer = api_tracer(settings)
        calls = model_call_metrics()  # rows, wait, duration of the model calls (served/shadow)
        self._runtime_call = runtime_call
        self._runtime: dict[str, Any] | None = None
        model = ModelClient(
            batched,
            unbatched,
            max_batch_size=settings.max_batch_size,
            coalesce_inflight=settings.coalesce_inflight,
            coalesce_fill=settings.coalesce_fill,
            metrics=calls,
            tracer=self.tracer,
            fault_injection=settings.fault_injection,
        )
        worker_id = f"api{worker_index}"  # names its profile and shadow files
        self.scorer = served_scorer(settings, model, worker_id=worker_id)
        self.shadow = attach_shadow(
            self.scorer,
            settings,
            shadow_tag,
            observed(retrying(shadow_call), SHADOW, calls),
            worker_id=worker_id,
            tracer=self.tracer,  # the span is the queue's, in the request's trace
        )
        self.monitor: Any = self.scorer.monitor
        origin = lifecycle.served_registry_info(model_store.stored_labels(self.scorer.tag))
        lifecycle.publish_model_info(self.scorer.tag, origin)
        self.http = HttpApi(
            self.scorer, self.monitor, align_tolerance_s=settings.align_tolerance_s, registry=origin
        )
        # the Open Inference Protocol (REST /v2, gRPC inference.*) over the same scorer
        self.inference = InferenceModel(self.scorer, ready)
        self.v2 = V2Http(self.inference)
        self._ready = ready
        self.in_process: InProcessModel | None = None  # HAR_MODEL_PLACEMENT=in-process
        self.grpc_server: Any = None
        self._grpc_stop: asyncio.Future[None] | None = None
        self._lease: graceful.CallerLease | None = None

    @classmethod
    def of(
        cls, service: Any, settings: Settings, shadow_tag: str | None, worker_index: int | None
    ) -> ApiWorker:
        """The worker of a BentoML API service instance whose ``model_service`` (and, with
        ``shadow_tag``, ``shadow_service``) are its ``bentoml.depends`` dependencies; with
        ``HAR_MODEL_PLACEMENT=in-process`` it has no ``model_service``: the worker loads the
        model itself (:func:`~har.serving.model_worker.in_process_model`)."""

        def shadow_call(x: np.ndarray) -> Awaitable[np.ndarray]:
            return service.shadow_service.to_async.predict_proba(x)  # type: ignore[no-any-return]

        if settings.model_placement == "in-process":
            local = InProcessModel(in_process_model(settings, settings.model_tag))
            worker = cls(
                settings,
                local.batched,
                local.unbatched,
                shadow_tag=shadow_tag,
                shadow_call=shadow_call,
                worker_index=worker_index or 0,
                runtime_call=local.info,
                ready=None,  # the model is loaded and probed: ready once constructed
            )
            worker.in_process = local
            return worker
        return cls(
            settings,
            lambda x: service.model_service.to_async.predict_proba(x),
            lambda x: service.model_service.to_async.predict_many(x),
            shadow_tag=shadow_tag,
            shadow_call=shadow_call,
            worker_index=worker_index or 0,
            runtime_call=lambda: service.model_service.to_async.runtime(),
            ready=lambda: model_ready(service.model_service),
        )

    async def ready(self) -> bool:
        """The API service's readiness (``/readyz``): the model service answers its own
        readiness probe within 5 s; in-process, the model is loaded (always, once built)."""
        return True if self._ready is None else await self._ready()

    async def model(self) -> dict[str, Any]:
        """``GET /model``: the tag and card, and ``runtime`` as the model worker reports it
        (asked once; ``null`` while the model worker does not answer)."""
        if self._runtime is None and self._runtime_call is not None:
            try:
                self._runtime = dict(await asyncio.wait_for(self._runtime_call(), 5.0))
            except Exception:  # not ready yet: asked again on the next GET /model
                logging.getLogger(__name__).debug("model runtime not known yet", exc_info=True)
        return {**self.http.model(), "runtime": self._runtime}

    async def start(self, access: Access, tls: GrpcTLS | None) -> None:
        """Start the gRPC server (unless ``grpc_port`` is 0) on this worker's event loop."""
        s = self.settings
        if s.grpc_port:
            self.grpc_server = await grpc_service.start_grpc_server(
                self.scorer,
                s.grpc_host,
                s.grpc_port,
                max_message_bytes=s.max_request_bytes,
                interceptors=[  # outermost first: refused calls are counted too
                    ObservabilityInterceptor(
                        grpc_metrics(), self.tracer, fault_injection=s.fault_injection
                    ),
                    *access.grpc_interceptors(),
                ],
                credentials=grpc_server_credentials(tls),
                stream_idle_timeout_s=s.stream_idle_timeout_s,
                stream_max_duration_s=s.stream_max_duration_s,
                inference=self.inference,
            )
        # the model workers keep serving until this is released, at the end of stop()
        self._lease = graceful.CallerLease.take()
        graceful.on_stop_begins(self._begin_grpc_stop)  # with the HTTP drain, not after it
        logging.getLogger("har.graceful").setLevel(logging.INFO)
        workers.freeze_startup_heap()  # last start-up step of the API worker

    def _begin_grpc_stop(self) -> None:
        """Refuse new gRPC calls; those in flight get ``GRPC_STOP_GRACE_S`` to finish."""
        if self.grpc_server is not None and self._grpc_stop is None:
            self._grpc_stop = asyncio.ensure_future(
                grpc_service.stop_grpc_server(self.grpc_server, graceful.GRPC_STOP_GRACE_S)
            )

    async def stop(self) -> None:
        """Stop gRPC (begun with the HTTP drain), drain the shadow, flush monitoring (every
        served window on disk), then release the lease the model workers wait for."""
        try:
            self._begin_grpc_stop()
            if self._grpc_stop is not None:
                await self._grpc_stop
            if self.shadow is not None:
                await self.shadow.close()
            if self.monitor is not None:
                await asyncio.to_thread(self.monitor.close)
            if self.scorer.sampler is not None:  # HAR_SAMPLE_DIR: the last kept windows
                await asyncio.to_thread(self.scorer.sampler.close)
            if self.in_process is not None:
                await asyncio.to_thread(self.in_process.close)
        finally:
            if self._lease is not None:
                self._lease.release()
