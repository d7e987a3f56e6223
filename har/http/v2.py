"""The Open Inference Protocol's REST binding under ``/v2``, with its binary tensor extension.

``service.py`` routes every ``/v2`` request of its read-only FastAPI app to
:meth:`V2Http.handle`; the service's ASGI middleware (bearer tokens, then the body bounds
``HAR_MAX_REQUEST_BYTES`` / ``HAR_BODY_READ_TIMEOUT_S``) wraps it as it wraps ``/predict``.

=======  ================================================  ===========================================
method   path                                              answer
=======  ================================================  ===========================================
GET      ``/v2``                                           ``{"name", "version", "extensions"}``
GET      ``/v2/health/live``                               ``{"live": true}``
GET      ``/v2/health/ready``                              ``{"ready": bool}`` (503 when not ready)
GET      ``/v2/models/{name}[/versions/{v}]``              model metadata (inputs, outputs, properties)
GET      ``/v2/models/{name}[/versions/{v}]/ready``        ``{"name", "ready": bool}`` (503 when not)
POST     ``/v2/models/{name}[/versions/{v}]/infer``        outputs (JSON, or JSON + binary tensors)
=======  ================================================  ===========================================

An inference request is the protocol's JSON (``{"id"?, "parameters"?, "inputs": [{"name",
"datatype", "shape", "data" | "parameters": {"binary_data_size"}}], "outputs"?}``). With the
binary tensor data extension (what ``tritonclient.http`` sends by default), the header
``Inference-Header-Content-Length: n`` says the body's first ``n`` bytes are that JSON and
the rest the tensors' raw bytes, each input's ``binary_data_size`` of them in input order.
An output is answered as raw bytes after the JSON when its request says
``"parameters": {"binary_data": true}`` or the request's parameters say
``"binary_data_output": true``; the answer then carries the same header. Sizes are
checked against the shape and the body before anything is allocated.

Errors: ``{"error": message}`` with 400 (the request's mistake), 404 (an unknown path, model
or version), 405 (wrong method), 503 with ``Retry-After`` (the model service cannot answer now):
raised, and answered by :func:`har.http.errors.error_response`, the HTTP layer's one mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from har.core.open_inference import Inference, InferenceModel, OutputTensor, TensorHeader
from har.domain.errors import InputError, ModelUnavailableError, quoted
from har.http.errors import RequestError, error_response

#: The binary tensor data extension's header: bytes of JSON at the start of the body.
HEADER_LENGTH = "inference-header-content-length"
_MODEL_PATH = re.compile(
    r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<op>/ready|/infer)?/?"
)


def _json(answer: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(answer), status, media_type="application/json")


class RestInference:
    """A decoded ``/infer`` body: the inference, the request's ``id`` and which outputs
    are wanted as binary data."""

    def __init__(self, inference: Inference, request_id: str | None, binary: frozenset[str]):
        self.inference = inference
        self.request_id = request_id
        self.binary = binary


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object")
    return value


def _parameters(obj: Mapping[str, Any], what: str) -> dict[str, Any]:
    return _object(obj.get("parameters", {}), f"{what} 'parameters'")


def _header(obj: Mapping[str, Any], i: int) -> TensorHeader:
    name, datatype, shape = obj.get("name"), obj.get("datatype"), obj.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise InputError(f"input {i} needs a string 'name' and 'datatype'")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise InputError(f"input {quoted(name)}: 'shape' must be a list of integers")
    return TensorHeader(name, datatype, tuple(shape))


def parse_infer_body(
    model: InferenceModel, body: bytes, header_length: str | None
) -> RestInference:
    """Decode an ``/infer`` body (JSON, or JSON + binary tensors when ``header_length``,
    the ``Inference-Header-Content-Length`` value, is given).

    Every size is checked before data is read: the JSON length against the body, the
    declared shape against the model (:meth:`InferenceModel.check_inputs`), each
    ``binary_data_size`` against what is left of the body and against the shape.

    Raises:
        InputError: anything the protocol or the model does not accept.
    """
    head: bytes | memoryview
    if header_length is None:
        head, binary = body, memoryview(b"")
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise InputError("Inference-Header-Content-Length must be an integer") from None
        if not 0 <= n <= len(body):
            raise InputError(
                f"Inference-Header-Content-Length is {n}; the body has {len(body)} bytes"
            )
        view = memoryview(body)
        head, binary = view[:n], view[n:]
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError:
        raise InputError("the inference request's JSON cannot be parsed") from None
    request = _object(request, "the inference request")
    inputs = request.get("inputs")
    if not isinstance(inputs, list):
        raise InputError("the inference request needs 'inputs', a list of tensors")
    tensors = [_object(t, f"input {i}") for i, t in enumerate(inputs)]
    header = model.check_inputs([_header(t, i) for i, t in enumerate(tensors)])
    tensor = tensors[0]
    size = _parameters(tensor, f"input {header.name!r}").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(f"input {header.name!r}: 'binary_data_size' must be an integer >= 0")
        if header_length is None:
            raise InputError(
                f"input {header.name!r} declares binary_data_size but the request has no "
                "Inference-Header-Content-Length header (the length of its JSON)"
            )
        if size > len(binary):
            raise InputError(
                f"input {header.name!r} declares binary_data_size {size}; the body has "
                f"{len(binary)} bytes after the JSON"
            )
        if size < len(binary):
            raise InputError(
                f"the body has {len(binary) - size} bytes after the declared binary data"
            )
        windows = model.decode_raw(header, binary[:size])
    else:
        if len(binary):
            raise InputError(
                f"the body has {len(binary)} bytes after the JSON but no input declares "
                "'binary_data_size'"
            )
        if "data" not in tensor:
            raise InputError(f"input {header.name!r} has neither 'data' nor 'binary_data_size'")
        windows = model.decode_values(header, tensor["data"])
    params = _parameters(request, "the inference request")
    units = model.units(params)
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InputError("parameter 'binary_data_output' must be true or false")
    requested = request.get("outputs", [])
    if not isinstance(requested, list):
        raise InputError("'outputs' must be a list")
    names: list[str] = []
    binary_out: set[str] = set()
    for i, out in enumerate(requested):
        out = _object(out, f"output {i}")
        name = out.get("name")
        if not isinstance(name, str):
            raise InputError(f"output {i} needs a string 'name'")
        names.append(name)
        flag = _parameters(out, f"output {quoted(name)}").get("binary_data", binary_default)
        if not isinstance(flag, bool):
            raise InputError(f"output {quoted(name)}: 'binary_data' must be true or false")
        if flag:
            binary_out.add(name)
    outputs = model.outputs(names)
    if not requested and binary_default:
        binary_out = set(outputs)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError("'id' must be a string")
    return RestInference(Inference(windows, units, outputs), request_id, frozenset(binary_out))


def infer_response(
    model: InferenceModel,
    outputs: list[OutputTensor],
    request_id: str | None,
    binary: frozenset[str],
) -> Response:
    """The ``/infer`` answer: JSON, followed by the raw bytes of the ``binary`` outputs
    (in output order) with ``Inference-Header-Content-Length`` when there are any."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out in outputs:
        tensor: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        if out.name in binary:
            raw = out.raw()
            blobs.append(raw)
            tensor["parameters"] = {"binary_data_size": len(raw)}
        else:
            tensor["data"] = out.array.ravel()
        tensors.append(tensor)
    answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = tensors
    head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return Response(head, media_type="application/json")
    return Response(
        b"".join([head, *blobs]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


class V2Http:
    """The ``/v2`` endpoints of one API worker.

    Args:
        model: the served model as the protocol presents it (its scorer is ``/predict``'s).
    """

    def __init__(self, model: InferenceModel) -> None:
        self.model = model

    async def handle(self, request: Request) -> Response:
        """Answer any request under ``/v2`` (the table in this module's docstring); errors
        as :func:`har.http.errors.error_response` maps them, serialised as ``json.dumps``
        does (the form the ``/v2`` routes have always answered with)."""
        try:
            return await self._route(request)
        except (InputError, ModelUnavailableError) as exc:
            return error_response(exc, compact=False)

    async def _route(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        if path in ("/v2", "/v2/"):
            self._get(method)
            return _json(self.model.server_metadata())
        if path == "/v2/health/live":
            self._get(method)
            return _json({"live": True})
        if path == "/v2/health/ready":
            self._get(method)
            ready = await self.model.ready()
            return _json({"ready": ready}, 200 if ready else 503)
        m = _MODEL_PATH.fullmatch(path)
        if m is None:
            raise RequestError(f"unknown path {quoted(path)} under /v2", 404)
        self.model.check_model(m["name"], m["version"])
        op = m["op"]
        if op == "/infer":
            if method != "POST":
                raise RequestError("use POST for /infer", 405)
            return await self._infer(request)
        self._get(method)
        if op == "/ready":
            ready = await self.model.ready()
            return _json({"name": self.model.name, "ready": ready}, 200 if ready else 503)
        return _json(self.model.model_metadata())

    @staticmethod
    def _get(method: str) -> None:
        if method not in ("GET", "HEAD"):
            raise RequestError("use GET", 405)

    async def _infer(self, request: Request) -> Response:
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            raise InputError(
                f"Content-Encoding {quoted(encoding)} is not supported; send the body uncompressed"
            )
        body = await request.body()
        parsed = parse_infer_body(self.model, body, request.headers.get(HEADER_LENGTH))
        outputs = await self.model.infer(parsed.inference)
        return infer_response(self.model, outputs, parsed.request_id, parsed.binary)
