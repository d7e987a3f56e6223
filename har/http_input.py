"""``POST /predict``'s request body, parsed once, straight to float32.

BentoML's default input handling validates ``list[list[list[float]]]`` with pydantic:
1,200 Python floats per window, each checked, before ``har.scorer.Scorer`` turns
them into an array anyway (about a third of the API worker's time per request, by
py-spy). :class:`PredictInput` keeps the same pydantic model for the OpenAPI page
(schema and runnable example) but parses the body itself:

- ``application/json`` (the default): ``{"windows": [...], "units": {...}}`` decoded
  by orjson, the windows converted to one float32 array in one call;
- ``application/x-npy``: a NumPy ``.npy`` file of shape ``(N, window, 6)`` (float32,
  or any real dtype: converted), loaded without pickles; units in the query string,
  ``?acc_unit=g&gyro_unit=rad/s`` (default canonical). Example::

      python -c "import numpy as np, sys; np.save(sys.stdout.buffer, x)" |
          curl -H 'Content-Type: application/x-npy' --data-binary @- \\
          'localhost:3000/predict?acc_unit=g'

The body is bounded by ``BodySizeLimitMiddleware`` (``har/http.py``) before it is
read. A client's mistake is not raised here (BentoML would answer a 500 for an
exception outside its own validation errors): it travels in the ``windows`` field as
a :class:`~har.errors.InputError`, and ``HttpApi.predict`` answers it with a 400.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import bentoml
import numpy as np
import orjson

from har.card import CANONICAL_UNITS, Units
from har.errors import InputError

#: Media type of a NumPy ``.npy`` body.
NPY_MEDIA_TYPE = "application/x-npy"
#: Query parameters naming the units of an ``.npy`` body (as ``/predict_recording``'s fields).
UNIT_QUERY = {"acc_unit": "acc", "gyro_unit": "gyro"}


def _windows_array(windows: object) -> np.ndarray | InputError:
    """Nested JSON lists as one float32 array (shape checked later, by the scorer)."""
    try:
        return np.asarray(windows, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        return InputError(f"windows must be an array of numbers shaped (N, window, 6): {exc}")


def _units(fields: object) -> Units | InputError:
    if not isinstance(fields, Mapping):
        return InputError('units must be an object like {"acc": "g", "gyro": "rad/s"}')
    try:
        return Units.parse(fields)
    except InputError as exc:
        return InputError(f"units: {exc}")


def parse_json(body: bytes) -> tuple[np.ndarray | InputError, Units | InputError]:
    """A JSON ``/predict`` body as ``(windows float32, units)``; a mistake in place of either.

    NaN and Infinity are not JSON (orjson refuses them); such a body is re-read with
    the standard library, so the client hears that the values are not finite rather
    than that the JSON is invalid.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            err = InputError(f"request body is not valid JSON: {exc}")
            return err, err
    if not isinstance(doc, dict):
        err = InputError('the body must be a JSON object: {"windows": [...], "units": {...}}')
        return err, err
    unknown = sorted(set(doc) - {"windows", "units"})
    if unknown:
        err = InputError(f"unknown fields {unknown}; send 'windows' and optionally 'units'")
        return err, err
    if "windows" not in doc:
        err = InputError("missing field 'windows': N windows of window x 6 values")
        return err, err
    units = _units(doc["units"]) if "units" in doc else CANONICAL_UNITS
    return _windows_array(doc["windows"]), units


def parse_npy(
    body: bytes, query: Mapping[str, str]
) -> tuple[np.ndarray | InputError, Units | InputError]:
    """An ``application/x-npy`` body as ``(windows float32, units from the query string)``."""
    units = _units({UNIT_QUERY[k]: v for k, v in query.items() if k in UNIT_QUERY})
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        return InputError(f"body is not a readable .npy array: {exc}"), units
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        kind = getattr(arr, "dtype", type(arr).__name__)
        return InputError(f".npy body must hold real numbers, got {kind}"), units
    return np.ascontiguousarray(arr, dtype=np.float32), units


class PredictInput(bentoml.IODescriptor):
    """``/predict``'s input: the declared schema, parsed by :func:`parse_json` / :func:`parse_npy`.

    The field annotations are those of ``service.py``'s endpoint signature
    (``har.http.WINDOWS``, ``har.http.UNITS``) and serve the OpenAPI page and
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
