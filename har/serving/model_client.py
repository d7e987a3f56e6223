"""How the API service calls the model service: routing by size, coalescing, one retry.

:class:`ModelClient` is the :data:`har.domain.model_call.Infer` the service gives its
:class:`~har.core.scorer.Scorer`. Inputs of at most ``max_batch_size`` windows go to the
model service's adaptively batched method, merged with concurrent callers by a
:class:`~har.serving.coalescing.Coalescer`; larger ones (whole recordings) go to its
unbatched method. BentoML 1.4.30's batching would split a large input into
``max_batch_size`` jobs, but they keep the input's enqueue time, so a long recording
outlives ``max_latency_ms`` and is cancelled (503): hence two methods.
:func:`model_ready` is the API service's readiness probe: BentoML's own dependency
probe (``runner_probe``) raises instead of answering False when the model worker is
gone or does not answer within 5 s (``/readyz`` 500, not 503; on 1.4.30 it could hang
for the whole traffic timeout): tests/unit/serving/patches/test_bentoml_workarounds.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import nullcontext
from typing import Any

import aiohttp
import numpy as np

from har.domain.errors import ModelUnavailableError
from har.domain.model_call import INJECTED_FAULT, Infer
from har.monitoring.metrics import SERVED, ModelCallMetrics
from har.serving.coalescing import Coalescer

logger = logging.getLogger(__name__)

#: Errors of BentoML's client worth one retry: it may reuse a pooled connection that
#: the model worker has just closed (idle keep-alive); inference has no side effects.
#: With ``runner_connection`` on the model service (service.py) it should not fire:
#: each retry is logged at WARNING, so it can be counted.
RETRYABLE: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ServerDisconnectedError,
)


def retrying(fn: Infer, retry_on: tuple[type[BaseException], ...] = RETRYABLE) -> Infer:
    """``fn``, called a second time if the first call raises one of ``retry_on``."""

    async def call(x: np.ndarray) -> np.ndarray:
        try:
            return await fn(x)
        except retry_on as exc:
            logger.warning("model call retried once after %s", type(exc).__name__)
            return await fn(x)

    return call


def observed(fn: Infer, model: str, metrics: ModelCallMetrics | None, tracer: Any = None) -> Infer:
    """``fn`` (one call of the model service), measured and traced.

    Each call observes its windows (``har_model_call_rows``) and duration
    (``har_model_call_seconds``) and is counted open (``har_model_calls_in_flight``),
    all labelled ``model``; with an OpenTelemetry ``tracer`` it is the span
    ``har.model_call`` (attributes ``har.model``, ``har.rows``), a child of the current
    span: the request whose arrival sent the call (a coalesced call carries other
    requests' windows too). ``metrics=None`` and ``tracer=None``: ``fn`` itself.
    """
    if metrics is None and tracer is None:
        return fn
    rows: Any = None
    seconds: Any = None
    in_flight: Any = None
    if metrics is not None:
        rows, seconds = metrics.rows.labels(model), metrics.seconds.labels(model)
        in_flight = metrics.in_flight.labels(model)

    async def call(x: np.ndarray) -> np.ndarray:
        n = int(x.shape[0])
        span = (
            tracer.start_as_current_span(
                "har.model_call", attributes={"har.model": model, "har.rows": n}
            )
            if tracer is not None
            else nullcontext()
        )
        with span:
            if in_flight is None:
                return await fn(x)
            in_flight.inc()
            started = time.perf_counter()
            try:
                return await fn(x)
            finally:
                seconds.observe(time.perf_counter() - started)
                rows.observe(n)
                in_flight.dec()

    return call


class ModelClient:
    """Callable ``(N, window, 6)`` scaled float32 -> ``(N, n_classes)`` probabilities.

    Args:
        batched: the model service's batchable method (inputs of at most ``max_batch_size``).
        unbatched: its method for larger inputs.
        max_batch_size: the batched method's largest batch.
        coalesce_inflight: calls of ``batched`` open at once before concurrent callers
            are merged into one call (0: one call per caller).
        coalesce_fill: balance the merged calls under closed-loop load (har/serving/coalescing.py).
            The service passes ``HAR_MAX_BATCH_SIZE``, ``HAR_COALESCE_INFLIGHT`` and
            ``HAR_COALESCE_FILL`` (defaults: :class:`har.settings.Settings`, their one source).
        retry_on: errors after which a call is made once more.
        metrics: the model-call metrics (:mod:`har.monitoring.metrics`, ``model="served"``):
            each call of the model service as :func:`observed` says, the coalescer's
            wait, and the requests waiting for an answer (``har_model_callers``).
            ``None``: none recorded.
        tracer: an OpenTelemetry tracer: each call of the model service is a span
            (:func:`observed`). ``None``: no spans.
        fault_injection: fail a request whose context carries
            :data:`~har.domain.model_call.INJECTED_FAULT` (tests only, ``HAR_FAULT_INJECTION``):
            ``internal`` raises ``RuntimeError``, ``unavailable``
            :class:`~har.domain.errors.ModelUnavailableError`.
    """

    def __init__(
        self,
        batched: Infer,
        unbatched: Infer,
        *,
        max_batch_size: int,
        coalesce_inflight: int,
        coalesce_fill: bool,
        retry_on: tuple[type[BaseException], ...] = RETRYABLE,
        metrics: ModelCallMetrics | None = None,
        tracer: Any = None,
        fault_injection: bool = False,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.fault_injection = fault_injection
        self._unbatched = observed(retrying(unbatched, retry_on), SERVED, metrics, tracer)
        small = observed(retrying(batched, retry_on), SERVED, metrics, tracer)
        self._callers = metrics.callers.labels(SERVED) if metrics is not None else None
        self.coalescer = (
            Coalescer(
                small,
                max_rows=max_batch_size,
                max_inflight=coalesce_inflight,
                fill=coalesce_fill,
                on_call=metrics.wait.labels(SERVED).observe if metrics is not None else None,
            )
            if coalesce_inflight
            else None
        )
        self._small: Infer = self.coalescer or small

    async def __call__(self, scaled: np.ndarray) -> np.ndarray:
        """Probabilities; :class:`~har.domain.errors.ModelUnavailableError` when the model service
        cannot be reached (after the retry) or answers that it is unavailable."""
        from bentoml.exceptions import ServiceUnavailable

        if self.fault_injection and (fault := INJECTED_FAULT.get()):
            if fault == "unavailable":
                raise ModelUnavailableError("injected fault: the model service is unavailable")
            raise RuntimeError(f"injected fault: {fault} (HAR_FAULT_INJECTION)")
        if self._callers is not None:
            self._callers.inc()
        try:
            if scaled.shape[0] <= self.max_batch_size:
                return await self._small(scaled)
            return await self._unbatched(scaled)
        except (aiohttp.ClientError, ServiceUnavailable) as exc:
            raise ModelUnavailableError(
                f"the model service is unavailable ({type(exc).__name__}); retry shortly"
            ) from exc
        finally:
            if self._callers is not None:
                self._callers.dec()


async def model_ready(
    model_service: Any, *, probe_timeout_s: float = 3, deadline_s: float = 5
) -> bool:
    """Whether the model service answers its own ``/readyz`` within ``deadline_s``.

    ``model_service`` is the API service's ``bentoml.depends`` attribute: a remote
    proxy with ``is_ready(timeout)`` when served, the model service object itself when
    run in-process (then it is ready once constructed).
    """
    probe = getattr(model_service, "is_ready", None)
    if probe is None:
        return True
    try:
        return bool(await asyncio.wait_for(probe(probe_timeout_s), timeout=deadline_s))
    except (TimeoutError, OSError):
        return False
