"""The gRPC API (``har/v1/har.proto``): an ``asyncio`` servicer over :class:`har.core.scorer.Scorer`.

The servicer only translates: protobuf messages to arrays and :class:`~har.domain.card.Units`,
the core's typed results (:mod:`har.domain.results`) to messages, errors to status codes.
Validation, units, scaling, the model, monitoring and the cutting of live streams
into windows (:class:`~har.core.scorer.StreamSession`) are the core's, shared with the
HTTP API.

``service.py`` starts the server in the API service's ``@bentoml.on_startup`` hook,
on BentoML's event loop, and stops it on shutdown::

    grpc_server = await start_grpc_server(scorer, "0.0.0.0", 50051, max_message_bytes=...)
    ...
    await stop_grpc_server(grpc_server)

Errors: raised, and mapped to status codes once, by :func:`har.grpc.errors.abort`
(:class:`~har.domain.errors.InputError`, the client's mistake, is ``INVALID_ARGUMENT`` with
its message; anything unexpected is logged with its traceback and is ``INTERNAL``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from har.core.open_inference import InferenceModel
from har.core.scorer import Scorer
from har.domain.errors import InputError
from har.domain.results import StreamResult
from har.domain.smoothing import check_smoothing
from har.grpc.errors import StreamLimitError, abort
from har.grpc.messages import (  # noqa: F401  (re-exported for callers and tests)
    SERVICE_NAME,
    Undecodable,
    _check,
    add_servicer,
    prediction_messages,
    safe_deserializer,
    summary_message,
    units_from_proto,
)
from har.grpc.v2_service import add_inference_servicer
from har.v1 import har_pb2, har_pb2_grpc

logger = logging.getLogger(__name__)


class ActivityRecognitionServicer(har_pb2_grpc.ActivityRecognitionServicer):
    """``har.v1.ActivityRecognition`` on a ``grpc.aio`` server.

    Args:
        scorer: the transport-agnostic core (card, tag, batched model, monitoring).
        idle_timeout_s: a stream waiting longer for its next chunk ends (RESOURCE_EXHAUSTED).
        max_duration_s: a stream open longer ends (RESOURCE_EXHAUSTED).
    """

    def __init__(
        self, scorer: Scorer, *, idle_timeout_s: float = 60.0, max_duration_s: float = 43200.0
    ) -> None:
        self.scorer = scorer
        self.idle_timeout_s = idle_timeout_s
        self.max_duration_s = max_duration_s
        card = scorer.card
        self._model_info = har_pb2.ModelInfo(
            tag=scorer.tag,
            classes=card.classes,
            window=card.window,
            hop=card.hop,
            sample_rate_hz=card.sample_rate_hz,
            channels=card.channels,
            card_json=json.dumps(card.model_dump(mode="json")),
        )

    async def Predict(
        self, request: har_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> har_pb2.PredictResponse:
        """One prediction per window, in request order (``POST /predict`` over gRPC)."""
        try:
            _check(request)
            windows = self._windows(request.windows)
            units = units_from_proto(request.units)
            preds = await self.scorer.predict(windows, units)
            return har_pb2.PredictResponse(
                model=self.scorer.tag, predictions=prediction_messages(preds)
            )
        except Exception as exc:
            await abort(context, "Predict", exc)

    async def StreamPredict(
        self,
        request_iterator: AsyncIterator[har_pb2.SensorChunk],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[har_pb2.WindowPrediction]:
        """A prediction each time a window of the stream completes.

        Each chunk carries ``n`` timestamps (seconds, increasing across the stream) and
        ``n x 6`` values in the units set on the first chunk. When the client closes its
        side, windows held back for the anti-alias filter's look-ahead are flushed; then,
        if a chunk asked for it (``summary``), one message with the stream's timeline
        (``StreamSummary``, smoothed as the last non-empty ``smoothing`` says).
        """
        session = self.scorer.stream("grpc")  # the key groups its windows in monitoring
        want_summary, smoothing = False, ""
        try:
            async for item in self._bounded(request_iterator):
                _check(item)
                chunk = cast(har_pb2.SensorChunk, item)
                units = units_from_proto(chunk.units) if chunk.HasField("units") else None
                want_summary |= chunk.summary
                smoothing = check_smoothing(chunk.smoothing) if chunk.smoothing else smoothing
                result = await session.push(chunk.timestamps, chunk.values, units)
                for message in self._window_messages(result):
                    yield message
            for message in self._window_messages(await session.close()):
                yield message
            if want_summary:  # O(windows x classes): off the event loop
                timeline = await asyncio.to_thread(session.timeline, smoothing)
                summary = summary_message(timeline, session.windows)
                yield har_pb2.WindowPrediction(model=self.scorer.tag, summary=summary)
        except Exception as exc:
            await abort(context, "StreamPredict", exc)

    async def GetModel(
        self, request: har_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> har_pb2.ModelInfo:
        """The served model's tag and card."""
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return self._model_info

    async def _bounded(self, chunks: AsyncIterator[object]) -> AsyncIterator[object]:
        """The stream's chunks, each within ``idle_timeout_s`` of the previous one and all
        within ``max_duration_s`` of the start (else :class:`StreamLimitError`)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.max_duration_s
        it = chunks.__aiter__()
        while True:
            wait = min(self.idle_timeout_s, end - loop.time())
            try:
                chunk = await asyncio.wait_for(it.__anext__(), max(wait, 0.0))
            except StopAsyncIteration:
                return
            except TimeoutError:
                if loop.time() >= end:
                    raise StreamLimitError(
                        f"the stream was open longer than {self.max_duration_s:g} s "
                        "(HAR_STREAM_MAX_DURATION_S): open a new one"
                    ) from None
                raise StreamLimitError(
                    f"no chunk for {self.idle_timeout_s:g} s (HAR_STREAM_IDLE_TIMEOUT_S)"
                ) from None
            yield chunk

    # translation helpers

    def _windows(self, windows: Sequence[har_pb2.Window]) -> np.ndarray:
        """``Window`` messages (``values`` or little-endian float32 ``packed``) as one
        ``(N, window, 6)`` float32 C-contiguous array (units as sent): ``Scorer.predict``'s
        input as it is, each window's length checked here, the count and ``N >= 1`` there."""
        card = self.scorer.card
        need = card.window * card.n_channels
        out = np.empty((len(windows), need), np.float32)
        for i, w in enumerate(windows):
            if w.packed:
                if len(w.values):
                    raise InputError(f"window {i} sets both 'values' and 'packed'; send one")
                got = len(w.packed) / 4
                if got == need:
                    out[i] = np.frombuffer(w.packed, "<f4")
                    continue
                what = f"{len(w.packed)} packed bytes ({got:g} float32)"
            else:
                got, what = len(w.values), f"{len(w.values)} values"
                if got == need:
                    out[i] = w.values
                    continue
            raise InputError(
                f"window {i} has {what}; each window needs {need}: "
                f"{card.window} samples x {card.n_channels} channels "
                f"{card.channels}, time-major"
            )
        return out.reshape(len(windows), card.window, card.n_channels)

    def _window_messages(self, result: StreamResult) -> list[har_pb2.WindowPrediction]:
        """``WindowPrediction`` messages for the windows of one stream step."""
        if not len(result):
            return []
        w = result.windows
        return [
            har_pb2.WindowPrediction(
                index=result.first_index + i,
                start=start,
                end=end,
                prediction=p,
                model=self.scorer.tag,
            )
            for i, (start, end, p) in enumerate(
                zip(
                    w.start_s.tolist(),
                    w.end_s.tolist(),
                    prediction_messages(result.predictions),
                    strict=True,
                )
            )
        ]


@dataclass
class GrpcServer:
    """A started gRPC server.

    Attributes:
        server: the running ``grpc.aio.Server``.
        port: the bound port (the ephemeral one when started with port 0).
        health: its ``grpc.health.v1.Health`` servicer.
    """

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, then stop; calls in flight get ``grace`` seconds to finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_server(
    scorer: Scorer,
    host: str,
    port: int,
    *,
    max_message_bytes: int,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    stream_idle_timeout_s: float = 60.0,
    stream_max_duration_s: float = 43200.0,
    inference: InferenceModel | None = None,
) -> GrpcServer:
    """Start ``har.v1.ActivityRecognition`` (and, given ``inference``, the Open Inference
    Protocol's ``inference.GRPCInferenceService``) with health checking and reflection.

    Call from a coroutine on the event loop that should serve the calls (BentoML's, in
    an ``@bentoml.on_startup`` hook). ``SO_REUSEPORT`` is on, so several API workers can
    bind the same port.

    Args:
        scorer: the service's :class:`~har.core.scorer.Scorer`.
        host: interface to bind (``"0.0.0.0"``, ``"::"``, ``"127.0.0.1"``, ...).
        port: TCP port; 0 picks a free one (see :attr:`GrpcServer.port`).
        max_message_bytes: largest request and response message.
        interceptors: run before every call (e.g. ``har.core.access`` bearer tokens).
        credentials: TLS server credentials (``har.grpc.tls``); ``None``: plaintext.
        stream_idle_timeout_s, stream_max_duration_s: bounds of one StreamPredict call.
        inference: the served model for ``inference.GRPCInferenceService`` (``har.grpc.v2_service``).

    Raises:
        RuntimeError: the address cannot be bound.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1),
        ],
        interceptors=list(interceptors),
    )
    add_servicer(
        ActivityRecognitionServicer(
            scorer, idle_timeout_s=stream_idle_timeout_s, max_duration_s=stream_max_duration_s
        ),
        server,
    )
    services = [SERVICE_NAME]
    if inference is not None:
        services.append(add_inference_servicer(inference, server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *services):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot bind gRPC to {address}: {exc}") from exc
    if bound == 0:
        raise RuntimeError(f"cannot bind gRPC to {address}")
    await server.start()
    logger.info(
        "gRPC %s listening on %s (port %d, %s)",
        SERVICE_NAME,
        address,
        bound,
        "TLS" if credentials is not None else "plaintext",
    )
    return GrpcServer(server=server, port=bound, health=health_servicer)


async def stop_grpc_server(server: GrpcServer, grace: float = 5.0) -> None:
    """Health NOT_SERVING, then stop ``server``, giving calls in flight ``grace`` seconds."""
    await server.stop(grace)


__all__ = [
    "SERVICE_NAME",
    "ActivityRecognitionServicer",
    "GrpcServer",
    "StreamLimitError",
    "prediction_messages",
    "start_grpc_server",
    "stop_grpc_server",
    "summary_message",
    "units_from_proto",
]
