"""JSON from clients, read with bounded cost and never a 500: every failure an InputError.

orjson (fast) refuses nesting deeper than :data:`MAX_JSON_DEPTH`, numbers beyond a double
and the ``NaN`` / ``Infinity`` tokens. The standard library's parser, the usual fallback,
recurses (a body nested 100,000 deep raised ``RecursionError``: a 500), builds integers of
any size that numpy cannot convert (``OverflowError``: a 500) and refuses integers over
4,300 digits. :func:`loads` uses orjson, and the standard library only for what orjson
refuses, with every number read by ``float()`` (a number beyond a double becomes an
:class:`~har.domain.errors.OutOfRangeNumber` the caller can name) and its recursion caught.
Used for ``POST /predict`` bodies (``har/http/request_body.py``) and Garmin export cells
(``har/domain/recordings.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from har.domain.errors import InputError, OutOfRangeNumber

#: Nesting orjson reads; deeper is refused (as is what reaches the fallback parser's
#: recursion limit, a little lower).
MAX_JSON_DEPTH = 1024


def _number(text: str, huge: Callable[[str], Any] = OutOfRangeNumber) -> Any:
    """``json.loads``' ``parse_int`` / ``parse_float``: a float, or ``huge(text)`` past a
    double's range (``float()`` is linear in the length and gives infinity there, where
    ``int()`` would build a big integer that numpy then cannot convert)."""
    value = float(text)
    return value if math.isfinite(value) else huge(text)


def signed_infinity(text: str) -> float:
    """A number past a double's range as the infinity of its sign (``huge`` of :func:`loads`)."""
    return -math.inf if text.lstrip().startswith("-") else math.inf


def too_deep(what: str, hint: str = "") -> InputError:
    """The answer to JSON nested deeper than the parsers follow."""
    return InputError(
        f"{what} is not accepted: JSON arrays/objects nested too deeply (at most "
        f"{MAX_JSON_DEPTH} levels are read{hint})"
    )


def is_depth_error(exc: orjson.JSONDecodeError) -> bool:
    """Whether orjson refused ``exc``'s document for its nesting."""
    return "depth" in str(exc) or "recursion" in str(exc).lower()


def loads(
    data: bytes | str,
    what: str = "request body",
    hint: str = "",
    huge: Callable[[str], Any] = OutOfRangeNumber,
) -> Any:
    """JSON as Python values (``what`` is the thing read, ``hint`` follows the nesting limit
    in a refusal's message).

    orjson first. Whatever it refuses is read again by the standard library, so that
    ``NaN`` / ``Infinity`` tokens parse (the client then hears that its values are not
    finite rather than that the JSON is invalid) and a number too large for a double
    becomes ``huge(its text)``: an :class:`~har.domain.errors.OutOfRangeNumber` by default (the
    caller names it), or :func:`signed_infinity`. Nesting stays refused either way.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise too_deep(what, hint) from None
    try:
        number = partial(_number, huge=huge)
        return json.loads(data, parse_int=number, parse_float=number)
    except RecursionError:
        raise too_deep(what, hint) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None
