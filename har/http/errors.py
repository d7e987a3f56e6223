"""Errors over HTTP: raised below the routes, answered here once.

Everything below the routes raises; nothing returns an error as a value.
:func:`error_response` is the one mapping from an exception to an answer:

==================================================  ==========================================
raised                                              answer ``{"error": message}`` with
==================================================  ==========================================
:class:`RequestError`                               its own 4xx (``status``)
``ModelNotFoundError`` (another model or version)   404
:class:`~har.domain.errors.InputError` (the client)  400
:class:`~har.domain.errors.ModelUnavailableError`    503 and ``Retry-After: 2``, a fixed message
==================================================  ==========================================

Its callers: the ``client-errors`` patch around BentoML's ``api_endpoint``
(``har/serving/patches/client_errors.py``: ``/predict``, ``/predict_recording``), the read-only
FastAPI routes' exception handler (:func:`handle_input_error`: ``/monitoring/*``) and the Open
Inference Protocol's routes (``har/http/v2.py``).

Two serialisations of the same body, each kept as its routes have always sent it: compact
UTF-8 as Starlette's ``JSONResponse`` renders it (BentoML's endpoints and the read-only
routes), and ``json.dumps``'s default (ASCII, ``", "`` / ``": "``), which the ASGI
middlewares in front of every route use (401, 413) and the ``/v2`` routes answer with too.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from har.core.answers import error_answer_bytes
from har.core.open_inference import ModelNotFoundError
from har.domain.errors import InputError, ModelUnavailableError

#: The message of every 503: the model service's own words stay in the server log.
UNAVAILABLE = "the model is unavailable; retry shortly"
#: Seconds a client is told to wait before it retries a 503.
RETRY_AFTER_S = 2


class RequestError(InputError):
    """A client's mistake answered with another 4xx than 400 (``status``): a body the API
    cannot take (415), monitoring that is off or cannot answer (404), a path or method
    the ``/v2`` routes do not serve (404, 405)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def status_of(exc: InputError | ModelUnavailableError) -> int:
    """The HTTP status of ``exc`` (the module's table)."""
    if isinstance(exc, ModelUnavailableError):
        return 503
    if isinstance(exc, RequestError):
        return exc.status
    return 404 if isinstance(exc, ModelNotFoundError) else 400


def error_response(exc: InputError | ModelUnavailableError, *, compact: bool = True) -> Response:
    """The answer to ``exc``: ``{"error": message}`` with its status (the module's table).

    Args:
        exc: a client's mistake, or the model service unable to answer now.
        compact: the body as ``JSONResponse`` renders it; ``False``: as ``json.dumps`` does
            (the ``/v2`` routes and the ASGI middlewares).
    """
    status = status_of(exc)
    unavailable = isinstance(exc, ModelUnavailableError)
    body = error_answer_bytes(UNAVAILABLE if unavailable else str(exc), compact=compact)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if unavailable else None
    return Response(body, status, headers, media_type="application/json")


async def handle_input_error(request: Any, exc: Exception) -> Response:
    """:func:`error_response` as a Starlette/FastAPI exception handler for ``InputError``."""
    assert isinstance(exc, InputError)
    return error_response(exc)
