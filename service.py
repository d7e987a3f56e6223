"""BentoML wiring: a batched model service and the API service (HTTP + gRPC) in front of it.

Everything that can be tested without BentoML lives in ``har``; each endpoint
here delegates to it in a line or two. Run with ``make serve`` (HTTP :3000,
gRPC :50051) or ``bentoml serve service:HARService``.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import bentoml
import numpy as np
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from har import grpc_service, registry
from har.card import Units
from har.coalescing import Coalescer
from har.errors import InputError
from har.http import BodySizeLimitMiddleware, client_error, read_upload
from har.inference import CompiledModel, configure_tensorflow
from har.openapi import DocumentedService
from har.serving import Scorer
from har.settings import get_settings


def _cancel_traffic_timers() -> None:
    """Make BentoML's ``TimeoutMiddleware`` cancel its per-request timer when the request ends.

    BentoML 1.4.30 schedules ``loop.call_later(traffic timeout, ...)`` for every HTTP
    request and never cancels it, so each finished request's timer, waiter future and
    context (with its OpenTelemetry span) stay on the event loop for the whole traffic
    timeout (120 s here): at 400 requests/s that is ~50,000 live timers, ~250 MB in the
    API worker, and garbage-collection passes over them that cost ~25 % of the HTTP
    throughput after a few minutes of load (load_tests/RESULTS.md). Same behaviour,
    timer cancelled in ``finally``; applied once, in every worker that imports this module.
    """
    from bentoml._internal.server.http import traffic
    from starlette.responses import JSONResponse as StarletteJSON

    cls = traffic.TimeoutMiddleware
    if getattr(cls, "_har_cancels_timer", False):
        return

    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
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
                await StarletteJSON(body, status_code=504)(scope, receive, send)
        else:
            await fut
        finally:
            timer.cancel()

    cls.__call__ = __call__
    cls._har_cancels_timer = True


_cancel_traffic_timers()


def _freeze_startup_heap() -> None:
    """Exclude everything alive after start-up from later garbage collections.

    A worker holds ~270,000 long-lived objects after importing BentoML, pydantic,
    gRPC and whylogs. Each ``/predict`` body becomes ~200 nested lists while it is
    parsed, many requests are in flight at once, so full collections come often and
    each walked the whole start-up heap: ~25 % of the API worker's time at c=64.
    Frozen, they are skipped. Measured in an interleaved A/B (two servers, 5 rounds,
    HTTP c=64): median 480 vs 358 requests/s, p99 190 vs 366 ms.
    """
    gc.collect()
    gc.freeze()


settings = get_settings()
RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError)
EXAMPLE_WINDOW = [[0.0, 0.0, 9.81, 0.0, 0.0, 0.0]] * 200  # a watch lying flat, at rest
UPLOAD = Annotated[list[Path], Field(max_length=1)]
read_api = FastAPI(title="read-only endpoints", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(
    name="har-model",
    workers=1,
    traffic={"timeout": 120, "max_concurrency": 4096},
    logging={"access": {"enabled": False}},
)
class HARModel:
    """The Keras model behind one adaptively batched method (BentoML's successor to a runner)."""

    bento_model = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        configure_tensorflow(intra_op_threads=1, inter_op_threads=1)
        loaded = registry.load_model(str(self.bento_model.tag))
        self.compiled = CompiledModel(
            loaded.model, xla=settings.xla, max_batch_size=settings.max_batch_size
        )
        self.compiled.warmup()
        _freeze_startup_heap()

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
        """Unbatched path for whole recordings (already large batches)."""
        return self.compiled(windows)


@bentoml.service(
    name="har",
    workers=1,
    traffic={"timeout": 120, "max_concurrency": 4096},
    logging={"access": {"enabled": False}},
    http={"port": 3000},
    # BentoML's own dependency probe can hang a /readyz for the whole traffic timeout
    # while the model worker is still starting, and then blocks shutdown: __is_ready__
    # below probes with a hard deadline instead.
    runner_probe={"enabled": False},
    service_class=DocumentedService,  # the docs page: har/openapi.py
)
@bentoml.asgi_app(read_api, path="/")
class HARService:
    """Predictions for single windows, whole recordings and (over gRPC) live sensor streams."""

    model_service = bentoml.depends(HARModel)

    def __init__(self) -> None:
        tag, stored = registry.stored_model(settings.model_tag)
        card = registry.ModelCard.from_file(stored / registry.CARD_FILE)
        self.monitor = None
        if settings.monitoring:
            from har.monitoring import Monitor

            ref = stored / registry.REFERENCE_FILE
            self.monitor = Monitor(
                card,
                settings,
                ref if ref.is_file() else None,
                worker_id=f"api{bentoml.server_context.worker_index or 0}",
            )
            self.monitor.start()
        self.scorer = Scorer(
            card,
            tag,
            self._infer,
            monitor=self.monitor,
            max_windows=settings.max_windows_per_request,
            max_fill=settings.max_fill_samples,
        )
        self.grpc_server: Any = None
        self.coalescer = (
            Coalescer(
                self._call_model,
                max_rows=settings.max_batch_size,
                max_inflight=settings.coalesce_inflight,
            )
            if settings.coalesce_inflight
            else None
        )

    async def _infer(self, scaled: np.ndarray) -> np.ndarray:
        if self.coalescer is not None and scaled.shape[0] <= settings.max_batch_size:
            return await self.coalescer(scaled)
        return await self._call_model(scaled)

    async def _call_model(self, scaled: np.ndarray) -> np.ndarray:
        method = (
            self.model_service.to_async.predict_proba
            if scaled.shape[0] <= settings.max_batch_size
            else self.model_service.to_async.predict_many
        )
        try:
            return await method(scaled)
        except RETRYABLE:
            # BentoML's client may reuse a pooled connection that the model worker has
            # just closed (idle keep-alive); inference has no side effects: retry once.
            return await method(scaled)

    async def __is_ready__(self) -> bool:
        """Ready when the model service answers its own /readyz within 5 s."""
        probe = getattr(self.model_service, "is_ready", None)
        if probe is None:  # in-process dependency: ready once constructed
            return True
        try:
            return bool(await asyncio.wait_for(probe(3), timeout=5))
        except (TimeoutError, OSError):
            return False

    @bentoml.on_startup
    async def start_grpc(self) -> None:
        if settings.grpc_port:
            self.grpc_server = await grpc_service.start_grpc_server(
                self.scorer,
                settings.grpc_host,
                settings.grpc_port,
                max_message_bytes=settings.max_request_bytes,
            )
        _freeze_startup_heap()  # last start-up step of the API worker

    @bentoml.on_shutdown
    async def stop(self) -> None:
        if self.grpc_server is not None:
            await grpc_service.stop_grpc_server(self.grpc_server)
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)

    @bentoml.api(route="/predict")
    async def predict(
        self,
        windows: Annotated[
            list[list[list[float]]],
            Field(
                description="N windows of `window` samples x 6 channels (acc_x, acc_y, acc_z, "
                "gyro_x, gyro_y, gyro_z), time-major; units as in `units`",
                examples=[[EXAMPLE_WINDOW]],
            ),
        ],
        units: Annotated[
            Units, Field(description="Units of the values (default m/s2 and deg/s).")
        ] = Units(),  # noqa: B008  (pydantic default, immutable in practice)
    ) -> dict[str, Any]:
        """Classify windows: one prediction per window, in request order."""
        try:
            return await self.scorer.predict(windows, units)
        except InputError as exc:
            return client_error(exc)

    @bentoml.api(route="/predict_recording")
    async def predict_recording(
        self,
        # Optional uploads are lists of at most one file: BentoML 1.4 cannot express
        # `Path | None` upload fields (its file schema breaks typing.Union).
        file: UPLOAD = [],  # noqa: B006  (never mutated)
        accelerometer: UPLOAD = [],  # noqa: B006
        gyroscope: UPLOAD = [],  # noqa: B006
        acc_unit: str = "m/s2",
        gyro_unit: str = "deg/s",
    ) -> dict[str, Any]:
        """Score a whole recording: a canonical CSV (`file`) or a Garmin pair
        (`accelerometer` + `gyroscope`); returns windows, merged segments and seconds
        per activity. Example: `curl -F file=@data/production/session_canonical_100hz.csv
        localhost:3000/predict_recording`."""
        try:
            rec = await asyncio.to_thread(
                read_upload,
                file[0] if file else None,
                accelerometer[0] if accelerometer else None,
                gyroscope[0] if gyroscope else None,
                acc_unit,
                gyro_unit,
                tolerance_s=settings.align_tolerance_s,
            )
            return await self.scorer.predict_recording(rec)
        except InputError as exc:
            return client_error(exc)

    @read_api.get("/model")
    def model(self) -> dict[str, Any]:
        """The served model's tag and card (classes, window geometry, units, scaler, metrics)."""
        return self.scorer.model_info()

    @read_api.get("/monitoring/drift")
    async def drift(
        self,
        since: Annotated[
            str | None, Query(description="ISO 8601 start (default: service start)")
        ] = None,
        until: Annotated[str | None, Query(description="ISO 8601 end (default: now)")] = None,
    ) -> Any:
        """Drift of what was served against the model's reference profile."""
        if self.monitor is None:
            return JSONResponse({"error": "monitoring is disabled (HAR_MONITORING=0)"}, 404)
        try:
            from har.monitoring import parse_interval

            start, end = parse_interval(since, until)
        except InputError as exc:
            return client_error(exc)
        return await asyncio.to_thread(self.monitor.drift, start, end)


HARService.add_asgi_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
