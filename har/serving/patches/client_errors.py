"""client-errors: client mistakes in a request body as 4xx answers in our words, before BentoML's handlers.

BentoML 1.4.40 parses an API's input in ``_bentoml_impl/server/app.py``
(``ServiceAppFactory.api_endpoint``) and answers what goes wrong there itself: a
pydantic ``ValidationError`` becomes a 400 whose body lists pydantic's messages and
documentation URLs, anything else (a multipart body without a boundary, garbage
multipart, an upload field sent as text) a 500; each one is logged at ERROR with a
traceback. Its serde (``_bentoml_impl/serde.py``) also downloads any string sent in place
of a file (multipart text fields, or a JSON body that is a URL). :func:`install` (applied
through the registry in :mod:`har.serving.patches`, after :func:`check` found what it
replaces in the shape it was written for) changes four things:

- an upload field must be a file part: a string (URL, ``file://...``, anything) is a 400,
  and nothing is fetched or read on the client's behalf;
- a multipart text field is read as BentoML reads it (JSON if it parses, else the text)
  but by :func:`form_value`: JSON nested too deeply is a 400, not a ``RecursionError``;
- a JSON body to an endpoint with upload fields is a 415 (uploads are multipart);
- errors while parsing the input, and a client's mistake the endpoint raises
  (:class:`~har.domain.errors.InputError`), become ``{"error": message}`` with a 4xx
  (:func:`har.http.errors.error_response`, the HTTP layer's one mapping) and one INFO log
  line; the model service unreachable (restarting, shutting down) is a 503 with
  ``Retry-After`` (the same function); other errors of the endpoint keep BentoML's handling (500, traceback).

What each replaced function was is kept as ``_har_upstream_<name>`` on its class.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import UploadFile

from har.domain.errors import InputError, ModelUnavailableError, quoted
from har.domain.safe_json import MAX_JSON_DEPTH, is_depth_error
from har.http.errors import RequestError, error_response, status_of
from har.serving.patches.guard import UPSTREAM, Expect, Patch

logger = logging.getLogger("har.http")


def validation_message(exc: Any, limit: int = 3) -> str:
    """A pydantic ``ValidationError`` in our words: the fields and what they must be."""
    parts = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False)[:limit]:
        loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".")
        kind = str(err.get("type", ""))
        if kind == "json_invalid":
            parts.append("the body is not valid JSON")
        elif kind == "missing":
            parts.append(f"'{loc}' is required")
        elif kind.startswith(("float", "int")):
            parts.append(f"'{loc}' must be a number")
        elif kind.startswith("list"):
            parts.append(f"'{loc}' must be a list")
        elif kind.startswith(("dict", "model")):
            parts.append(f"'{loc or 'body'}' must be an object")
        elif kind.startswith("string"):
            parts.append(f"'{loc}' must be a string")
        elif kind == "too_long":
            parts.append(f"'{loc}' has too many items")
        else:
            parts.append(f"'{loc or 'body'}' is not valid here")
    more = exc.error_count() - len(parts)
    return "invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def form_value(name: str, value: str | bytes) -> Any:
    """A multipart text field's value as BentoML reads it (JSON if it parses, else the
    text), without its ``json.loads``: nesting too deep for a parser is a 400 naming the
    field, never a ``RecursionError`` (500); numbers too large become text too."""
    import orjson

    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise RequestError(
                f"form field {quoted(name)} is not accepted: JSON arrays/objects nested too "
                f"deeply (at most {MAX_JSON_DEPTH} levels are read)"
            ) from None
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise RequestError(f"form field {quoted(name)} is not UTF-8 text") from None
    return value


def _refuse_string(obj: Any) -> Any:
    if isinstance(obj, UploadFile):
        return obj
    raise RequestError(
        "an upload field must be a file (a multipart part with a filename), not a text "
        "value; nothing is fetched from a URL or read from a path"
    )


def install() -> None:
    """Patch BentoML's input parsing as the module docstring says. Idempotent."""
    from _bentoml_impl import serde
    from _bentoml_impl.server.app import ServiceAppFactory
    from pydantic import ValidationError
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    if getattr(ServiceAppFactory, "_har_client_errors", False):
        return
    from _bentoml_sdk.io_models import IOMixin

    for owner, name in (
        (serde.MultipartSerde, "ensure_file"),
        (serde.JSONSerde, "parse_request"),
        (serde.MultipartSerde, "parse_request"),
        (IOMixin, "from_http_request"),
        (ServiceAppFactory, "api_endpoint"),
    ):
        setattr(owner, UPSTREAM + name, vars(owner)[name])

    async def ensure_file(obj: Any) -> Any:
        return _refuse_string(obj)

    serde.MultipartSerde.ensure_file = staticmethod(ensure_file)

    async def json_parse_request(self: Any, request: Any, cls: Any) -> Any:
        if getattr(cls, "multipart_fields", None):
            fields = ", ".join(sorted(cls.multipart_fields))
            raise RequestError(
                f"this endpoint takes uploads ({fields}): send multipart/form-data", 415
            )
        body = await request.body()
        return self.deserialize_model(serde.Payload((body,), metadata=request.headers), cls)

    serde.JSONSerde.parse_request = json_parse_request

    async def multipart_parse_request(self: Any, request: Any, cls: Any) -> Any:
        # BentoML's MultipartSerde.parse_request, with text fields read by form_value
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip() == "multipart/form-data" and "boundary=" not in ctype:
            raise RequestError("multipart/form-data needs a boundary parameter", 400)
        form = await request.form()
        data: dict[str, Any] = {}
        for k in form:
            if k in cls.multipart_fields:
                value = [await self.ensure_file(v) for v in form.getlist(k)]
                annotation = cls.model_fields[k].annotation
                if serde.is_union_type(annotation):
                    annotation = serde.get_args(annotation)[0]
                if serde.is_list_type(annotation):
                    data[k] = value
                elif value:
                    data[k] = value[0]
            else:
                v = form[k]
                data[k] = form_value(k, await v.read() if isinstance(v, UploadFile) else v)
        return cls.model_validate(data)

    serde.MultipartSerde.parse_request = multipart_parse_request

    parse = IOMixin.from_http_request.__func__

    async def from_http_request(cls: Any, request: Any, serde_: Any) -> Any:
        try:
            return await parse(cls, request, serde_)
        except InputError:
            raise
        except ValidationError as exc:
            raise RequestError(validation_message(exc)) from None
        except (HTTPException, MultiPartException) as exc:
            raise RequestError("the multipart body cannot be parsed") from exc
        except (UnicodeDecodeError, ValueError, KeyError) as exc:
            raise RequestError("the request body cannot be parsed") from exc

    IOMixin.from_http_request = classmethod(from_http_request)
    endpoint = ServiceAppFactory.api_endpoint

    async def api_endpoint(self: Any, name: str, request: Any) -> Any:
        try:
            return await endpoint(self, name, request)
        except InputError as exc:
            logger.info("%s %s: %d %s", request.method, request.url.path, status_of(exc), exc)
            return error_response(exc)
        except ModelUnavailableError as exc:
            logger.warning("%s %s: 503 %s", request.method, request.url.path, exc)
            return error_response(exc)

    ServiceAppFactory.api_endpoint = api_endpoint
    ServiceAppFactory._har_client_errors = True


#: :func:`~har.serving.patches.guard.fingerprint` of the upstream code copied, on WRITTEN_FOR.
FINGERPRINTS: dict[str, str] = {
    "JSONSerde.parse_request": "3ea0d77b4084d1be",
    "MultipartSerde.parse_request": "65de1b4c289aac56",
}


def check() -> list[str]:
    from _bentoml_impl import serde
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.io_models import IOMixin

    e = Expect()
    request = ("self", "request", "cls")
    e.source(serde.JSONSerde, "parse_request", request, FINGERPRINTS["JSONSerde.parse_request"])
    e.source(
        serde.MultipartSerde,
        "parse_request",
        request,
        FINGERPRINTS["MultipartSerde.parse_request"],
    )
    e.params(serde.MultipartSerde, "ensure_file", ("obj",))
    e.params(serde.JSONSerde, "deserialize_model", ("self", "payload", "cls"))
    for name in ("Payload", "is_union_type", "is_list_type", "get_args"):
        e.attribute(serde, name)
    media = getattr(serde, "ALL_SERDE", {})
    for media_type, cls in (
        ("application/json", serde.JSONSerde),
        ("multipart/form-data", serde.MultipartSerde),
        ("application/x-www-form-urlencoded", serde.MultipartSerde),
    ):
        e.true(media.get(media_type) is cls, f"ALL_SERDE[{media_type!r}] is not {cls.__name__}")
    e.params(IOMixin, "from_http_request", ("cls", "request", "serde"))
    e.calls_in(IOMixin, "from_http_request", "serde.parse_request(request")
    e.params(ServiceAppFactory, "api_endpoint", ("self", "name", "request"))
    e.calls_in(ServiceAppFactory, "api_endpoint", ".from_http_request(request, serde)")
    e.calls_in(ServiceAppFactory, "api_endpoint_wrapper", "await self.api_endpoint(name, request)")
    return e.found


PATCH = Patch(
    name="client-errors",
    what="_bentoml_impl.serde.JSONSerde / MultipartSerde.parse_request (upstream's code "
    "without the URL download), MultipartSerde.ensure_file (refuses strings), "
    "IOMixin.from_http_request and ServiceAppFactory.api_endpoint (wrapped: parse errors "
    "become 4xx in our words, an unreachable model a 503) (install)",
    why="BentoML answers client mistakes in a body with a 500 or pydantic's own 400, "
    "logs each at ERROR with a traceback, and downloads any string sent in place of a file",
    upstream="none found",
    loses="client mistakes answered 4xx in our words (a malformed multipart body becomes "
    "a 500), a 503 with Retry-After while the model restarts, and the refusal to fetch "
    "URLs named by clients (server-side request forgery)",
    until="BentoML maps parse errors to 4xx and stops fetching URLs from request bodies",
    required=True,
    check=check,
    apply=install,
)
