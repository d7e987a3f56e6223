"""The gRPC API (``har/v1/har.proto``): an ``asyncio`` servicer over :class:`har.serving.Scorer`.

The servicer only translates: protobuf messages to arrays and back, and errors to
status codes. Validation, units, scaling, the model and monitoring are the
:class:`~har.serving.Scorer`'s, shared with the HTTP API; live streams are cut into
windows by :class:`~har.streaming.StreamWindower`, which uses the same preprocessing.

``service.py`` starts the server in the API service's ``@bentoml.on_startup`` hook,
on BentoML's event loop, and stops it on shutdown::

    grpc_server = await start_grpc_server(scorer, "0.0.0.0", 50051, max_message_bytes=...)
    ...
    await stop_grpc_server(grpc_server)

Errors: :class:`~har.errors.InputError` (the client's mistake) becomes
``INVALID_ARGUMENT`` with its message; anything else is logged with its traceback
and becomes ``INTERNAL``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from har import scoring
from har.errors import InputError
from har.preprocessing import Windows, to_canonical, unit_factors
from har.serving import Scorer
from har.streaming import StreamWindower
from har.v1 import har_pb2, har_pb2_grpc

logger = logging.getLogger(__name__)

#: Fully qualified name of the service (health status and reflection use it).
SERVICE_NAME: str = har_pb2.DESCRIPTOR.services_by_name["ActivityRecognition"].full_name
#: Stream chunks with more samples than this are converted and windowed in a worker
#: thread, so that one huge chunk does not stall the event loop the HTTP API shares.
THREAD_CHUNK_SAMPLES = 5_000

_T = TypeVar("_T")


def units_dict(units: har_pb2.Units) -> dict[str, str]:
    """A ``Units`` message as the ``{"acc", "gyro"}`` dict the preprocessing takes.

    Empty strings mean the canonical units (m/s², deg/s); names are checked later by
    :func:`har.preprocessing.unit_factors`.
    """
    return {"acc": units.acc or "m/s2", "gyro": units.gyro or "deg/s"}


class ActivityRecognitionServicer(har_pb2_grpc.ActivityRecognitionServicer):
    """``har.v1.ActivityRecognition`` on a ``grpc.aio`` server.

    Args:
        scorer: the transport-agnostic core (card, tag, batched model, monitoring).
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.card = scorer.card
        self._values_per_window = self.card.window * self.card.n_channels
        info = scorer.model_info()
        self._model_info = har_pb2.ModelInfo(
            tag=info["tag"],
            classes=self.card.classes,
            window=self.card.window,
            hop=self.card.hop,
            sample_rate_hz=self.card.sample_rate_hz,
            channels=self.card.channels,
            card_json=json.dumps(info["card"]),
        )

    async def Predict(
        self, request: har_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> har_pb2.PredictResponse:
        """One prediction per window, in request order (``POST /predict`` over gRPC)."""
        try:
            windows = self._windows(request.windows)
            units = units_dict(request.units) if request.HasField("units") else None
            canonical = self.scorer.check_windows(windows, units)
            probs = await self.scorer.probabilities(canonical)
            return har_pb2.PredictResponse(
                model=self.scorer.tag, predictions=self._predictions(probs)
            )
        except Exception as exc:
            await _abort(context, "Predict", exc)

    async def StreamPredict(
        self,
        request_iterator: AsyncIterator[har_pb2.SensorChunk],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[har_pb2.WindowPrediction]:
        """A prediction each time a window of the stream completes.

        Each chunk carries ``n`` timestamps (seconds, increasing across the stream) and
        ``n x 6`` values in the units set on the first chunk. When the client closes its
        side, windows held back for the anti-alias filter's look-ahead are flushed.
        """
        stream_id = f"grpc-{uuid.uuid4().hex}"  # groups the stream's windows in monitoring
        windower = StreamWindower(
            self.card,
            max_fill=self.scorer.pre.max_fill,
            max_chunk_windows=self.scorer.max_windows,
        )
        units: dict[str, str] | None = None
        index = 0
        try:
            async for n, chunk in _enumerate(request_iterator):
                if chunk.HasField("units"):
                    units = self._stream_units(n, units, units_dict(chunk.units))
                if len(chunk.timestamps) > THREAD_CHUNK_SAMPLES:
                    new = await asyncio.to_thread(self._push, windower, n, chunk, units)
                else:
                    new = self._push(windower, n, chunk, units)
                if len(new):
                    for message in await self._window_predictions(new, index, stream_id):
                        yield message
                    index += len(new)
            new = windower.flush()
            if len(new):
                for message in await self._window_predictions(new, index, stream_id):
                    yield message
        except Exception as exc:
            await _abort(context, "StreamPredict", exc)

    async def GetModel(
        self, request: har_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> har_pb2.ModelInfo:
        """The served model's tag and card."""
        return self._model_info

    # translation helpers

    def _windows(self, windows: Sequence[har_pb2.Window]) -> np.ndarray:
        """``Window`` messages as ``(N, window, 6)`` float32 (units as sent)."""
        need = self._values_per_window
        out = np.empty((len(windows), need), np.float32)
        for i, w in enumerate(windows):
            if len(w.values) != need:
                raise InputError(
                    f"window {i} has {len(w.values)} values; each window needs {need}: "
                    f"{self.card.window} samples x {self.card.n_channels} channels "
                    f"{self.card.channels}, time-major"
                )
            out[i] = w.values
        return out.reshape(len(windows), self.card.window, self.card.n_channels)

    def _predictions(self, probs: np.ndarray) -> list[har_pb2.Prediction]:
        """``Prediction`` messages from ``(N, n_classes)`` probabilities (card class order)."""
        return [
            har_pb2.Prediction(
                activity=p["activity"],
                activity_id=p["activity_id"],
                confidence=p["confidence"],
                probabilities=row,
            )
            for p, row in zip(
                scoring.predictions(probs, self.card.classes), probs.tolist(), strict=True
            )
        ]

    @staticmethod
    def _stream_units(
        n: int, current: dict[str, str] | None, sent: dict[str, str]
    ) -> dict[str, str]:
        """The stream's units after chunk ``n`` sent ``sent`` (set once, on chunk 0)."""
        if n == 0:
            unit_factors(sent)  # unknown names fail here, before any sample is read
            return sent
        before = current or units_dict(har_pb2.Units())
        if sent != before:
            raise InputError(
                f"chunk {n}: units can only be set on a stream's first chunk; the stream "
                f"is in acc={before['acc']!r}, gyro={before['gyro']!r}, this chunk says "
                f"acc={sent['acc']!r}, gyro={sent['gyro']!r}"
            )
        return before

    def _push(
        self,
        windower: StreamWindower,
        n: int,
        chunk: har_pb2.SensorChunk,
        units: dict[str, str] | None,
    ) -> Windows:
        """Validate chunk ``n``, convert it to canonical units and window it."""
        k = len(chunk.timestamps)
        if len(chunk.values) != 6 * k:
            raise InputError(
                f"chunk {n}: {len(chunk.values)} values for {k} timestamps; send 6 values "
                f"per timestamp ({k} x 6 = {6 * k}, time-major: {self.card.channels})"
            )
        t = np.array(chunk.timestamps, np.float64)
        v = to_canonical(np.array(chunk.values, np.float64).reshape(k, 6), units)
        try:
            return windower.push(t, v)
        except InputError as exc:
            raise InputError(f"chunk {n}: {exc}") from None

    async def _window_predictions(
        self, new: Windows, first_index: int, stream_id: str
    ) -> list[har_pb2.WindowPrediction]:
        """``WindowPrediction`` messages for new stream windows, numbered from ``first_index``."""
        probs = await self.scorer.probabilities(new.values, sequence_key=stream_id)
        return [
            har_pb2.WindowPrediction(
                index=first_index + i, start=start, end=end, prediction=p, model=self.scorer.tag
            )
            for i, (start, end, p) in enumerate(
                zip(new.start_s.tolist(), new.end_s.tolist(), self._predictions(probs), strict=True)
            )
        ]


async def _enumerate(it: AsyncIterator[_T]) -> AsyncIterator[tuple[int, _T]]:
    i = 0
    async for item in it:
        yield i, item
        i += 1


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> NoReturn:
    """End the call: ``INVALID_ARGUMENT`` for an :class:`InputError`, else ``INTERNAL``."""
    if isinstance(exc, InputError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    logger.error("gRPC %s failed", method, exc_info=exc)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log"
    )
    raise AssertionError("unreachable: context.abort raises")


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

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


async def start_grpc_server(
    scorer: Scorer,
    host: str,
    port: int,
    *,
    max_message_bytes: int,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> GrpcServer:
    """Start ``har.v1.ActivityRecognition`` with health checking and reflection.

    Call from a coroutine on the event loop that should serve the calls (BentoML's, in
    an ``@bentoml.on_startup`` hook). ``SO_REUSEPORT`` is on, so several API workers can
    bind the same port.

    Args:
        scorer: the service's :class:`~har.serving.Scorer`.
        host: interface to bind (``"0.0.0.0"``, ``"::"``, ``"127.0.0.1"``, ...).
        port: TCP port; 0 picks a free one (see :attr:`GrpcServer.port`).
        max_message_bytes: largest request and response message.
        interceptors: run before every call (e.g. ``har.access`` bearer tokens).
        credentials: TLS server credentials (``har.tls``); ``None``: plaintext.

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
    har_pb2_grpc.add_ActivityRecognitionServicer_to_server(
        ActivityRecognitionServicer(scorer), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
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
    "start_grpc_server",
    "stop_grpc_server",
    "units_dict",
]
