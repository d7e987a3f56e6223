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
from typing import Any

import aiohttp
import numpy as np

from har.domain.errors import ModelUnavailableError
from har.domain.model_call import Infer
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


class ModelClient:
    """Callable ``(N, window, 6)`` scaled float32 -> ``(N, n_classes)`` probabilities.

    Args:
        batched: the model service's batchable method (inputs of at most ``max_batch_size``).
        unbatched: its method for larger inputs.
        max_batch_size: the batched method's largest batch.
        coalesce_inflight: calls of ``batched`` open at once before concurrent callers
            are merged into one call (0: one call per caller).
        coalesce_fill: balance the merged calls under closed-loop load (har/serving/coalescing.py).
        retry_on: errors after which a call is made once more.
    """

    def __init__(
        self,
        batched: Infer,
        unbatched: Infer,
        *,
        max_batch_size: int,
        coalesce_inflight: int = 0,
        coalesce_fill: bool = True,
        retry_on: tuple[type[BaseException], ...] = RETRYABLE,
    ) -> None:
        self.max_batch_size = max_batch_size
        self._unbatched = retrying(unbatched, retry_on)
        small = retrying(batched, retry_on)
        self.coalescer = (
            Coalescer(
                small, max_rows=max_batch_size, max_inflight=coalesce_inflight, fill=coalesce_fill
            )
            if coalesce_inflight
            else None
        )
        self._small: Infer = self.coalescer or small

    async def __call__(self, scaled: np.ndarray) -> np.ndarray:
        """Probabilities; :class:`~har.domain.errors.ModelUnavailableError` when the model service
        cannot be reached (after the retry) or answers that it is unavailable."""
        from bentoml.exceptions import ServiceUnavailable

        try:
            if scaled.shape[0] <= self.max_batch_size:
                return await self._small(scaled)
            return await self._unbatched(scaled)
        except (aiohttp.ClientError, ServiceUnavailable) as exc:
            raise ModelUnavailableError(
                f"the model service is unavailable ({type(exc).__name__}); retry shortly"
            ) from exc


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
