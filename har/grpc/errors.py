"""Errors over gRPC: raised below the servicers, mapped to a status code here, once.

Both servicers (``har.v1`` in :mod:`har.grpc.service`, the Open Inference Protocol in
:mod:`har.grpc.v2_service`) end a failed call with :func:`abort`:

==================================================  ====================================
raised                                              status
==================================================  ====================================
``ModelNotFoundError`` (another model or version)   ``NOT_FOUND``
:class:`~har.domain.errors.InputError` (the client)  ``INVALID_ARGUMENT``, its message
:class:`StreamLimitError`                           ``RESOURCE_EXHAUSTED``, its message
:class:`~har.domain.errors.ModelUnavailableError`    ``UNAVAILABLE`` (logged at WARNING)
anything else                                       ``INTERNAL`` (logged with its traceback)
==================================================  ====================================
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from har.core.open_inference import ModelNotFoundError
from har.domain.errors import InputError, ModelUnavailableError

logger = logging.getLogger(__name__)


class StreamLimitError(Exception):
    """A stream went past ``HAR_STREAM_IDLE_TIMEOUT_S`` or ``HAR_STREAM_MAX_DURATION_S``."""


async def abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> NoReturn:
    """End the call ``method`` with the status of ``exc`` (the module's table)."""
    if isinstance(exc, ModelNotFoundError):
        await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, InputError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, StreamLimitError):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, ModelUnavailableError):
        logger.warning("gRPC %s: %s", method, exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is unavailable; retry shortly")
    logger.error("gRPC %s failed", method, exc_info=exc)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log"
    )
    raise AssertionError("unreachable: context.abort raises")
