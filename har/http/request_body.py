"""``POST /predict``'s request body, parsed once, straight to float32.

BentoML's default input handling validates ``list[list[list[float]]]`` with pydantic:
1,200 Python floats per window, each checked, before ``har.core.scorer.Scorer`` turns
them into an array anyway (docs/performance.md). ``har.serving.predict_input.PredictInput`` keeps the same pydantic model for the
OpenAPI page (schema and runnable example) but parses the body with these functions:

- ``application/json`` (the default): ``{"windows": [...], "units": {...}}`` decoded
  by orjson, the windows converted to one float32 array in one call;
- ``application/x-npy``: a NumPy ``.npy`` file of shape ``(N, window, 6)`` (float32,
  or any real dtype: converted), loaded without pickles; units in the query string,
  ``?acc_unit=g&gyro_unit=rad/s`` (default canonical). Example::

      python -c "import numpy as np, sys; np.save(sys.stdout.buffer, x)" |
          curl -H 'Content-Type: application/x-npy' --data-binary @- \\
          'localhost:3000/predict?acc_unit=g'

The body is bounded by ``BodySizeLimitMiddleware`` (``har/http/endpoints.py``) before it is
read. A client's mistake is raised as an :class:`~har.domain.errors.InputError` and answered
with a 400 where every HTTP client error is (:mod:`har.http.errors`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np

from har.domain.card import CANONICAL_UNITS, Units
from har.domain.errors import InputError, OutOfRangeNumber, quoted
from har.domain.safe_json import loads

#: Media type of a NumPy ``.npy`` body.
NPY_MEDIA_TYPE = "application/x-npy"
#: Query parameters naming the units of an ``.npy`` body (as ``/predict_recording``'s fields).
UNIT_QUERY = {"acc_unit": "acc", "gyro_unit": "gyro"}


#: Largest magnitude a float32 holds; a finite JSON number above it is out of range.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _path(index: tuple[int, ...]) -> str:
    return "windows" + "".join(f"[{i}]" for i in index)


def _first_non_number(windows: object) -> tuple[tuple[int, ...], object] | None:
    """Where the first leaf of nested lists that is not a number sits, and the leaf.

    Iterative (no recursion, whatever the nesting) and linear in the number of items.
    """
    stack: list[tuple[tuple[int, ...], object]] = [((), windows)]
    while stack:
        index, item = stack.pop()
        if isinstance(item, list):
            stack.extend(((*index, i), x) for i, x in reversed(list(enumerate(item))))
        elif not isinstance(item, (int, float)) or isinstance(item, bool):
            return index, item
    return None


def _out_of_range(index: tuple[int, ...], value: object) -> InputError:
    return InputError(
        f"{_path(index)}: {quoted(value)} is out of range: sensor values must fit in float32 "
        f"(magnitude at most {FLOAT32_MAX:.4g})"
    )


def _windows_array(windows: object) -> np.ndarray:
    """Nested JSON lists as one float32 C-contiguous array, the windows ``Scorer.predict``
    takes (count and shape checked there).

    A finite number too large for float32 (or for a double) is refused here, naming
    where it is; NaN and infinity tokens pass, for the scorer to name. An overflow shows
    as numpy's floating-point error during the one conversion: no finiteness scan here.
    """
    try:
        with np.errstate(over="raise"):
            return np.asarray(windows, dtype=np.float32)
    except FloatingPointError:  # a finite number beyond float32: say where
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(windows, dtype=np.float32)
            wide = np.asarray(windows, dtype=np.float64)
        index = tuple(int(i) for i in np.argwhere(np.isfinite(wide) & ~np.isfinite(arr))[0])
        raise _out_of_range(index, float(wide[index])) from None
    except (ValueError, TypeError, OverflowError) as exc:
        found = _first_non_number(windows)
        if found is not None and isinstance(found[1], OutOfRangeNumber):
            raise _out_of_range(*found) from None
        why = f"{_path(found[0])} is {quoted(found[1])}" if found and found[0] else str(exc)
        raise InputError(
            f"windows must be an array of numbers shaped (N, window, 6): {why}"
        ) from None


def _units(fields: object) -> Units:
    if not isinstance(fields, Mapping):
        raise InputError('units must be an object like {"acc": "g", "gyro": "rad/s"}')
    try:
        return Units.parse(fields)
    except InputError as exc:
        raise InputError(f"units: {exc}") from None


def parse_json(body: bytes) -> tuple[np.ndarray, Units]:
    """A JSON ``/predict`` body as ``(windows float32, units)``.

    Raises:
        InputError: the first mistake, the windows' before the units'
            (:func:`har.domain.safe_json.loads` says which JSON is refused and how).
    """
    doc = loads(body, "request body", "; windows are 3 levels deep")
    if not isinstance(doc, dict):
        raise InputError('the body must be a JSON object: {"windows": [...], "units": {...}}')
    unknown = sorted(set(doc) - {"windows", "units"})
    if unknown:
        shown = ", ".join(quoted(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise InputError(f"unknown fields [{shown}]; send 'windows' and optionally 'units'")
    if "windows" not in doc:
        raise InputError("missing field 'windows': N windows of window x 6 values")
    windows = _windows_array(doc["windows"])
    return windows, _units(doc["units"]) if "units" in doc else CANONICAL_UNITS


def parse_npy(body: bytes, query: Mapping[str, str]) -> tuple[np.ndarray, Units]:
    """An ``application/x-npy`` body as ``(windows float32, units from the query string)``.

    The header is read first and its shape checked against the bytes that follow, so a
    header declaring more data than the body holds is refused before anything is
    allocated (``np.load`` would allocate the declared array first: a 30-byte header can
    ask for terabytes).

    Raises:
        InputError: the first mistake, the array's before the units'.
    """
    windows = _npy_array(body)
    return windows, _units({UNIT_QUERY[k]: v for k, v in query.items() if k in UNIT_QUERY})


def _npy_array(body: bytes) -> np.ndarray:
    """The ``.npy`` body's array as float32 C-contiguous (any real dtype or order)."""
    buf = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f".npy format version {version} is not supported (1.0 or 2.0)")
        shape, fortran_order, dtype = read_header(buf)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InputError(f"body is not a readable .npy array: {exc}") from None
    if dtype.hasobject:
        raise InputError("body is not a readable .npy array: it holds pickled objects")
    if dtype.kind not in "fiu":
        raise InputError(f".npy body must hold real numbers, got {dtype}")
    count = math.prod(shape)
    need, have = count * dtype.itemsize, len(body) - buf.tell()
    if have < need:
        raise InputError(
            f"body is not a readable .npy array: its header declares shape {shape} "
            f"({need} bytes of data), the body holds {have} bytes"
        )
    arr = np.frombuffer(body, dtype=dtype, count=count, offset=buf.tell())
    arr = arr.reshape(shape, order="F" if fortran_order else "C")
    return np.ascontiguousarray(arr, dtype=np.float32)


#: ``.npy`` header readers by format version (3.0 only differs for unicode field names).
NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
