"""BentoML wiring: a batched model service and the API service (HTTP + gRPC) in front of it.

Everything else lives in ``har`` (workers built by ``har/serving/assembly.py``); each endpoint
delegates to it in a line. ``make serve`` (HTTP :3000, gRPC :50051) runs it.
"""

from __future__ import annotations

from typing import Any

import bentoml
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from har.domain.card import CANONICAL_UNITS
from har.domain.errors import InputError
from har.http import endpoints as web
from har.http.errors import handle_input_error
from har.serving import workers
from har.serving.assembly import (
    ApiWorker,
    add_middleware,
    api_service_config,
    configure,
    model_service_config,
)
from har.serving.model_worker import model_worker
from har.serving.openapi import documented_service
from har.serving.predict_input import predict_input
from har.settings import get_settings

config = configure(get_settings())  # patches BentoML; resolves the model (har/serving/assembly.py)
settings, shadow_tag = config.settings, config.shadow_tag
read_api = FastAPI(
    title="read-only endpoints",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    exception_handlers={InputError: handle_input_error},  # 4xx {"error"}: har/http/errors.py
)


@bentoml.service(
    name="har-model",
    # never recycle the caller's sessions (read by the caller): why in har/serving/workers.py
    runner_connection=workers.RUNNER_CONNECTION,
    **model_service_config(settings),  # with HAR_TRACING: BentoML's OTLP exporter
)
class HARModel:
    """The model behind one adaptively batched method (BentoML's successor to a runner),
    on ONNX Runtime or TensorFlow (``HAR_RUNTIME``; har/runtime/onnx_model.py)."""

    bento_model = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        self.served = model_worker(settings, str(self.bento_model.tag))

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
    )
    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """``(N, window, 6)`` scaled float32 → ``(N, n_classes)`` softmax probabilities."""
        return self.served.run(windows)

    @bentoml.api
    def predict_many(self, windows: np.ndarray) -> np.ndarray:
        """Unbatched path for whole recordings (why two methods: har/serving/model_client.py)."""
        return self.served.run(windows)

    @bentoml.api
    def runtime(self) -> dict[str, Any]:
        """Which runtime runs the model and why, seen from inside this worker."""
        return self.served.info()


if shadow_tag:

    @bentoml.service(name="har-shadow", **HARModel.config)  # the same config as HARModel
    class HARShadow(HARModel.inner):  # type: ignore[misc,name-defined]
        """The shadow model: HARModel's methods and batching on another stored model."""

        bento_model = bentoml.models.BentoModel(shadow_tag)


@bentoml.service(
    name="har",
    http={"port": 3000},
    runner_probe={"enabled": False},  # __is_ready__ instead (why: har/serving/model_client.py)
    service_class=documented_service(settings.model_tag),  # the docs page: har/serving/openapi.py
    **api_service_config(settings),  # HAR_API_WORKERS workers
)
@bentoml.asgi_app(read_api, path="/")
class HARService:
    """Predictions for single windows, whole recordings and (over gRPC) live sensor streams."""

    if settings.model_placement == "service":  # else each API worker runs the model itself
        model_service = bentoml.depends(HARModel)
    if shadow_tag:
        shadow_service = bentoml.depends(HARShadow)

    def __init__(self) -> None:
        index = bentoml.server_context.worker_index
        self.worker = ApiWorker.of(self, settings, shadow_tag, index)  # har/serving/assembly.py
        self.api = self.worker.http

    async def __is_ready__(self) -> bool:
        """Ready when the model service answers its own /readyz within 5 s (in-process:
        when the model is loaded)."""
        return await self.worker.ready()

    @bentoml.on_startup
    async def start(self) -> None:
        await self.worker.start(config.access, config.tls)

    @bentoml.on_shutdown
    async def stop(self) -> None:
        await self.worker.stop()

    @bentoml.api(route="/predict", input_spec=predict_input(web.WINDOWS, web.UNITS))  # parsed once
    async def predict(
        self, windows: web.WINDOWS, units: web.UNITS = CANONICAL_UNITS
    ) -> dict[str, Any]:
        """Classify windows: one prediction per window, in request order. The body may
        also be a NumPy `.npy` array `(N, 200, 6)` sent as `Content-Type: application/x-npy`,
        units in the query string (`?acc_unit=g&gyro_unit=rad/s`)."""
        return await self.api.predict(windows, units)

    @bentoml.api(route="/predict_recording")
    async def predict_recording(
        self,
        file: web.UPLOAD = [],  # noqa: B006  (never mutated)
        accelerometer: web.UPLOAD = [],  # noqa: B006
        gyroscope: web.UPLOAD = [],  # noqa: B006
        acc_unit: str = CANONICAL_UNITS.acc,
        gyro_unit: str = CANONICAL_UNITS.gyro,
        smoothing: web.SMOOTHING = settings.smoothing,
    ) -> dict[str, Any]:
        """Score a whole recording: a canonical CSV (`file`) or a Garmin pair
        (`accelerometer` + `gyroscope`); returns windows, segments (`smoothing`) and seconds
        per activity. Example: `curl -F file=@data/production/session_canonical_100hz.csv
        localhost:3000/predict_recording`."""
        uploads = (f[0] if f else None for f in (file, accelerometer, gyroscope))
        return await self.api.predict_recording(*uploads, acc_unit, gyro_unit, smoothing)

    @read_api.get("/model")
    async def model(self) -> dict[str, Any]:
        """The served model's tag and card (classes, window geometry, units, scaler, metrics)
        and the runtime that runs it (`onnx` or `tensorflow`, and why)."""
        return await self.worker.model()

    @read_api.get("/monitoring/drift")
    async def drift(self, since: web.SINCE = None, until: web.UNTIL = None) -> Any:
        """Drift of what was served against the model's reference profile."""
        return await self.api.drift(since, until)

    @read_api.get("/monitoring/report", response_class=HTMLResponse)
    async def report(self, since: web.SINCE = None, until: web.UNTIL = None) -> Any:
        """The drift report page (plots, as `python -m har drift-report`) of what was served."""
        return await self.api.report(since, until)

    @read_api.get("/monitoring/shadow")
    def shadow_comparison(self, since: web.SINCE = None, until: web.UNTIL = None) -> Any:
        """The shadow model vs the served one on the same windows (every API worker's)."""
        return web.shadow_answer(self.worker.shadow, since, until)

    @read_api.api_route("/v2{path:path}", methods=["GET", "HEAD", "POST"], include_in_schema=False)
    async def open_inference(self, request: Request) -> Response:
        """The Open Inference Protocol (KServe V2) under `/v2`: metadata, health, infer."""
        return await self.worker.v2.handle(request)  # har/http/v2.py


add_middleware(HARService, config)  # bearer tokens, then body bounds (har/serving/assembly.py)
