"""``POST /predict``'s BentoML input: the declared schema, parsed by ``har.http.request_body``.

BentoML's default input handling validates ``list[list[list[float]]]`` with pydantic
before ``har.core.scorer.Scorer`` turns it into an array anyway. :class:`PredictInput`
keeps the same pydantic model for the OpenAPI page (schema and runnable example) but
parses the body itself, once, straight to float32 (:func:`~har.http.request_body.parse_json`,
:func:`~har.http.request_body.parse_npy`).
"""

from __future__ import annotations

from typing import Any

import bentoml

from har.domain.card import CANONICAL_UNITS
from har.http.request_body import NPY_MEDIA_TYPE, parse_json, parse_npy


class PredictInput(bentoml.IODescriptor):
    """``/predict``'s input: the declared schema, parsed by :func:`parse_json` / :func:`parse_npy`.

    The field annotations are those of ``service.py``'s endpoint signature
    (``har.http.endpoints.WINDOWS``, ``har.http.endpoints.UNITS``) and serve the OpenAPI page and
    BentoML's clients; an HTTP request never goes through their validation.
    """

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> Any:
        body = await request.body()
        media = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if media == NPY_MEDIA_TYPE:
            windows, units = parse_npy(body, request.query_params)
        else:
            windows, units = parse_json(body)
        return cls.model_construct(windows=windows, units=units)


def predict_input(windows_type: Any, units_type: Any) -> type[PredictInput]:
    """:class:`PredictInput` with fields ``windows: windows_type`` and ``units: units_type``."""
    from pydantic import create_model

    return create_model(
        "Input",
        __base__=PredictInput,
        __module__=__name__,
        windows=(windows_type, ...),
        units=(units_type, CANONICAL_UNITS),
    )
