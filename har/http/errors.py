"""Client errors over HTTP: raised as :class:`~har.domain.errors.InputError`, answered here once.

Everything below the endpoints raises; nothing returns an error as a value. The BentoML
endpoints (``/predict``, ``/predict_recording``) are answered by
:func:`error_response` in the ``client-errors`` patch (``har/serving/patches/client_errors.py``,
around BentoML's ``api_endpoint``); the read-only FastAPI routes (``/monitoring/*``) by the
same function as their exception handler (:func:`handle_input_error`). The Open Inference
Protocol's routes map their own errors (``har/http/v2.py``: 404 for an unknown model).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from har.core.answers import error_answer
from har.domain.errors import InputError


class RequestError(InputError):
    """A client's mistake answered with another 4xx than 400 (``status``): a body the API
    cannot take (415), monitoring that is off or cannot answer (404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def status_of(exc: InputError) -> int:
    """The HTTP status of a client's mistake: a :class:`RequestError`'s own, else 400."""
    return exc.status if isinstance(exc, RequestError) else 400


def error_response(exc: InputError) -> JSONResponse:
    """The answer to a client's mistake: ``{"error": message}`` with its 4xx status."""
    return JSONResponse(error_answer(str(exc)), status_code=status_of(exc))


async def handle_input_error(request: Any, exc: Exception) -> JSONResponse:
    """:func:`error_response` as a Starlette/FastAPI exception handler for ``InputError``."""
    assert isinstance(exc, InputError)
    return error_response(exc)
