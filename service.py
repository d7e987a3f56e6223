"""BentoML wiring: a batched model service and the API service (HTTP + gRPC) in front of it.

Everything that can be tested without BentoML lives in ``har``; each endpoint
here delegates to it in a line or two. Run with ``make serve`` (HTTP :3000,
gRPC :50051) or ``bentoml serve service:HARService``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import bentoml
import numpy as np
from fastapi import FastAPI

from har import bentoml_compat, bentoml_requests, grpc_service, lifecycle, registry
from har.access import Access, BearerAuthMiddleware
from har.card import CANONICAL_UNITS
from har.http import SINCE, UNITS, UNTIL, UPLOAD, WINDOWS, BodySizeLimitMiddleware, HttpApi
from har.inference import CompiledModel, configure_tensorflow
from har.model_client import ModelClient, model_ready
from har.scorer import served_scorer
from har.settings import get_settings
from har.tls import GrpcTLS, grpc_server_credentials

bentoml_compat.cancel_traffic_timers()  # at import: in every worker process
bentoml_compat.die_with_supervisor()  # workers never outlive `bentoml serve`
bentoml_compat.bound_metric_labels()  # /metrics: one label for unknown paths
bentoml_requests.install()  # client mistakes in a body: 4xx in our words (har/bentoml_requests.py)

# the model this service is configured for (HAR_MODEL_URI, else HAR_MODEL_TAG), found or
# stored now, so a plain `bentoml serve` works too; every worker serves this one tag
settings = get_settings().model_copy(
    update={"model_tag": lifecycle.ensure_served_model(get_settings()), "model_uri": None}
)
access = Access.from_settings(settings)  # bearer tokens (off unless HAR_API_TOKENS*)
grpc_tls = GrpcTLS.from_settings(settings)  # gRPC TLS (off unless HAR_GRPC_TLS_*)
#: Shared by both services: one worker each, generous timeout and concurrency, no access log.
SERVICE_CONFIG: dict[str, Any] = {
    "workers": 1,
    "traffic": {"timeout": 120, "max_concurrency": 4096},
    "logging": {"access": {"enabled": False}},
}
read_api = FastAPI(title="read-only endpoints", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(
    name="har-model",
    # BentoML 1.4.31+ replaces the caller's aiohttp session after 100 calls or 300 s and
    # closes the old one while calls still use it: ServerDisconnectedError under load
    # (bentoml/BentoML#5540, #5544). The caller reads this callee-side setting; never recycle.
    runner_connection={"max_requests": 10**9, "max_age": 1e9},  # max_age must be a float
    **SERVICE_CONFIG,
)
class HARModel:
    """The Keras model behind one adaptively batched method (BentoML's successor to a runner)."""

    bento_model = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        configure_tensorflow(intra_op_threads=1, inter_op_threads=1)
        model = registry.load_model(str(self.bento_model.tag)).model
        self.compiled = CompiledModel(
            model, xla=settings.xla, max_batch_size=settings.max_batch_size
        )
        self.compiled.warmup()
        bentoml_compat.freeze_startup_heap()

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
    )
    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """``(N, window, 6)`` scaled float32 → ``(N, n_classes)`` softmax probabilities."""
        return self.compiled(windows)

    @bentoml.api
    def predict_many(self, windows: np.ndarray) -> np.ndarray:
        """Unbatched path for whole recordings (why two methods: har/model_client.py)."""
        return self.compiled(windows)


@bentoml.service(
    name="har",
    http={"port": 3000},
    runner_probe={"enabled": False},  # __is_ready__ instead (why: har/model_client.py)
    **SERVICE_CONFIG,
)
@bentoml.asgi_app(read_api, path="/")
class HARService:
    """Predictions for single windows, whole recordings and (over gRPC) live sensor streams."""

    model_service = bentoml.depends(HARModel)

    def __init__(self) -> None:
        model = ModelClient(
            lambda x: self.model_service.to_async.predict_proba(x),
            lambda x: self.model_service.to_async.predict_many(x),
            max_batch_size=settings.max_batch_size,
            coalesce_inflight=settings.coalesce_inflight,
        )
        worker = f"api{bentoml.server_context.worker_index or 0}"
        self.scorer = served_scorer(settings, model, worker_id=worker)
        self.monitor: Any = self.scorer.monitor
        origin = lifecycle.served_registry_info(lifecycle.stored_model_labels(self.scorer.tag))
        lifecycle.publish_model_info(self.scorer.tag, origin)
        self.api = HttpApi(
            self.scorer, self.monitor, align_tolerance_s=settings.align_tolerance_s, registry=origin
        )
        self.grpc_server: Any = None

    async def __is_ready__(self) -> bool:
        """Ready when the model service answers its own /readyz within 5 s."""
        return await model_ready(self.model_service)

    @bentoml.on_startup
    async def start_grpc(self) -> None:
        if settings.grpc_port:
            self.grpc_server = await grpc_service.start_grpc_server(
                self.scorer,
                settings.grpc_host,
                settings.grpc_port,
                max_message_bytes=settings.max_request_bytes,
                interceptors=access.grpc_interceptors(),
                credentials=grpc_server_credentials(grpc_tls),
                stream_idle_timeout_s=settings.stream_idle_timeout_s,
                stream_max_duration_s=settings.stream_max_duration_s,
            )
        bentoml_compat.freeze_startup_heap()  # last start-up step of the API worker

    @bentoml.on_shutdown
    async def stop(self) -> None:
        if self.grpc_server is not None:
            await grpc_service.stop_grpc_server(self.grpc_server)
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)

    @bentoml.api(route="/predict")
    async def predict(self, windows: WINDOWS, units: UNITS = CANONICAL_UNITS) -> dict[str, Any]:
        """Classify windows: one prediction per window, in request order."""
        return await self.api.predict(windows, units)

    @bentoml.api(route="/predict_recording")
    async def predict_recording(
        self,
        file: UPLOAD = [],  # noqa: B006  (never mutated)
        accelerometer: UPLOAD = [],  # noqa: B006
        gyroscope: UPLOAD = [],  # noqa: B006
        acc_unit: str = CANONICAL_UNITS.acc,
        gyro_unit: str = CANONICAL_UNITS.gyro,
    ) -> dict[str, Any]:
        """Score a whole recording: a canonical CSV (`file`) or a Garmin pair
        (`accelerometer` + `gyroscope`); returns windows, merged segments and seconds
        per activity. Example: `curl -F file=@data/production/session_canonical_100hz.csv
        localhost:3000/predict_recording`."""
        uploads = (f[0] if f else None for f in (file, accelerometer, gyroscope))
        return await self.api.predict_recording(*uploads, acc_unit, gyro_unit)

    @read_api.get("/model")
    def model(self) -> dict[str, Any]:
        """The served model's tag and card (classes, window geometry, units, scaler, metrics)."""
        return self.api.model()

    @read_api.get("/monitoring/drift")
    async def drift(self, since: SINCE = None, until: UNTIL = None) -> Any:
        """Drift of what was served against the model's reference profile."""
        return await self.api.drift(since, until)


HARService.add_asgi_middleware(BearerAuthMiddleware, access=access)  # outermost: first
HARService.add_asgi_middleware(
    BodySizeLimitMiddleware,
    max_bytes=settings.max_request_bytes,
    read_timeout_s=settings.body_read_timeout_s,
)
