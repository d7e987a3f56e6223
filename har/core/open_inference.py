"""The Open Inference Protocol ("KServe V2") over the served model, for both transports.

The protocol's REST binding (:mod:`har.http.v2`) and gRPC binding
(:mod:`har.grpc.v2_service`) decode their wire formats and call :class:`InferenceModel`, which
holds what the two share: the model's name and version, server and model metadata, the
checks of a tensor's name, datatype and shape (made *before* its data is read, so a huge
declared shape costs nothing), the decoding of tensor data, the units read from request
parameters, and inference through :meth:`har.core.scorer.Scorer.predict`: the very path
``POST /predict`` and ``har.v1`` ``Predict`` take (validation, units, the card's scaler,
the batched model, monitoring of every window, the shadow).

The model as the protocol sees it:

* name: the served tag's name (before ``:``), version: the tag's version (after ``:``);
* input ``windows``: ``FP32 [-1, window, 6]``, time-major, canonical units (m/s², deg/s)
  unless the request's parameters ``acc_unit`` / ``gyro_unit`` say otherwise;
* outputs ``probabilities``: ``FP32 [-1, n_classes]`` (softmax, card class order) and
  ``activity_id``: ``INT64 [-1]`` (index of the most probable class).

Errors: :class:`ModelNotFoundError` (HTTP 404, gRPC ``NOT_FOUND``) for a model name or
version that is not the served one; any other :class:`~har.domain.errors.InputError` is the
client's mistake (HTTP 400, gRPC ``INVALID_ARGUMENT``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from har import __version__
from har.core.scorer import Scorer
from har.domain.card import Units
from har.domain.errors import InputError, quoted

#: The model's input and outputs.
INPUT = "windows"
PROBABILITIES = "probabilities"
ACTIVITY_ID = "activity_id"
#: Request parameters declaring the units of ``windows`` (default canonical).
UNIT_PARAMETERS = {"acc_unit": "acc", "gyro_unit": "gyro"}
#: The server's name in ``GET /v2`` / ``ServerMetadata``.
SERVER_NAME = "har"
#: Protocol extensions served (``binary_tensor_data``: REST only, as the protocol defines it).
EXTENSIONS = ("binary_tensor_data",)
#: Bytes per element of the protocol's fixed-size datatypes (``BYTES`` has no fixed size).
DATATYPE_BYTES: dict[str, int] = {
    "BOOL": 1,
    "UINT8": 1,
    "UINT16": 2,
    "UINT32": 4,
    "UINT64": 8,
    "INT8": 1,
    "INT16": 2,
    "INT32": 4,
    "INT64": 8,
    "FP16": 2,
    "FP32": 4,
    "FP64": 8,
    "BF16": 2,
}


class ModelNotFoundError(InputError):
    """A model name or version this server does not serve (HTTP 404, gRPC ``NOT_FOUND``)."""


@dataclass(frozen=True)
class TensorHeader:
    """A request tensor's declaration, before its data is read.

    Attributes:
        name: the tensor's name.
        datatype: the protocol's datatype name (``FP32``, ``INT64``, ...).
        shape: its shape as declared.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class OutputTensor:
    """One output of an inference: ``array`` has ``shape`` and the dtype of ``datatype``."""

    name: str
    datatype: str
    array: np.ndarray

    @property
    def shape(self) -> list[int]:
        return [int(d) for d in self.array.shape]

    def raw(self) -> bytes:
        """The data as the protocol's raw bytes: little-endian, row-major."""
        return self.array.astype(self.array.dtype.newbyteorder("<"), copy=False).tobytes()


@dataclass(frozen=True)
class Inference:
    """A decoded inference request: the windows as sent (float32 ``(N, window, 6)``, count and
    shape checked by :meth:`InferenceModel.check_inputs`), their units, the outputs wanted
    (in the requested order; all of them when the request names none)."""

    windows: np.ndarray
    units: Units
    outputs: tuple[str, ...]


class InferenceModel:
    """The served model as the Open Inference Protocol presents it.

    Args:
        scorer: the API worker's scorer (the one ``POST /predict`` uses).
        ready: whether the model can answer now (the service's readiness check);
            ``None``: always.
    """

    def __init__(self, scorer: Scorer, ready: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.scorer = scorer
        self._ready = ready
        name, _, version = scorer.tag.partition(":")
        self.name = name
        self.version = version
        card = scorer.card
        self.window = card.window
        self.channels = card.n_channels
        self.classes = list(card.classes)
        self.max_windows = scorer.max_windows

    # metadata and health

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2`` / ``ServerMetadata``: name, version, extensions."""
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def check_model(self, name: str, version: str | None = None) -> None:
        """Accept only the served model's name (and version, when one is given).

        Raises:
            ModelNotFoundError: another name or version.
        """
        if name != self.name:
            raise ModelNotFoundError(
                f"unknown model {quoted(name)}; this server serves {quoted(self.name)}"
            )
        if version and version != self.version:
            raise ModelNotFoundError(
                f"unknown version {quoted(version)} of model {quoted(name)}; this server "
                f"serves version {quoted(self.version)}"
            )

    def model_metadata(self) -> dict[str, Any]:
        """``GET /v2/models/{name}`` / ``ModelMetadata``: inputs, outputs and, as
        ``properties`` (strings), the class names, window geometry and canonical units."""
        card = self.scorer.card
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": "bentoml",
            "inputs": [
                {"name": INPUT, "datatype": "FP32", "shape": [-1, self.window, self.channels]}
            ],
            "outputs": [
                {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(self.classes)]},
                {"name": ACTIVITY_ID, "datatype": "INT64", "shape": [-1]},
            ],
            "properties": {
                "tag": self.scorer.tag,
                "classes": ",".join(self.classes),
                "channels": ",".join(card.channels),
                "window": str(card.window),
                "sample_rate_hz": str(card.sample_rate_hz),
                "acc_unit": card.units.acc,
                "gyro_unit": card.units.gyro,
            },
        }

    async def ready(self) -> bool:
        """Whether the model answers now (``/readyz``'s check)."""
        return True if self._ready is None else bool(await self._ready())

    # requests

    def check_inputs(self, headers: Sequence[TensorHeader]) -> TensorHeader:
        """The one input, checked before its data is read.

        Raises:
            InputError: no input, several, an unknown name, a datatype other than FP32, a
                shape other than ``[N, window, 6]`` or more windows than a request may carry.
        """
        if len(headers) != 1:
            raise InputError(
                f"the request has {len(headers)} inputs; the model has one, {INPUT!r} "
                f"(FP32 [-1, {self.window}, {self.channels}])"
            )
        h = headers[0]
        if h.name != INPUT:
            raise InputError(f"unknown input {quoted(h.name)}; the model's input is {INPUT!r}")
        if h.datatype != "FP32":
            raise InputError(f"input {INPUT!r} must be FP32, got {quoted(h.datatype)}")
        want = (self.window, self.channels)
        if len(h.shape) != 3 or tuple(h.shape[1:]) != want or h.shape[0] < 1:
            raise InputError(
                f"input {INPUT!r} must have shape [N, {want[0]}, {want[1]}] with N >= 1 "
                f"(time-major), got {list(h.shape)}"
            )
        if h.shape[0] > self.max_windows:
            raise InputError(
                f"too many windows in one request: {h.shape[0]} (at most {self.max_windows}); "
                "split the request"
            )
        return h

    def decode_raw(self, header: TensorHeader, raw: bytes | memoryview) -> np.ndarray:
        """Raw tensor bytes (little-endian FP32, row-major) as the checked ``header``'s array.

        Raises:
            InputError: the byte count does not match the shape.
        """
        need = element_count(header.shape) * 4
        if len(raw) != need:
            raise InputError(
                f"input {header.name!r} has {len(raw)} bytes of data; its shape "
                f"{list(header.shape)} of FP32 needs {need}"
            )
        return np.frombuffer(raw, "<f4").reshape(header.shape)

    def decode_values(self, header: TensorHeader, values: object) -> np.ndarray:
        """Tensor data given as numbers (REST JSON ``data``, flat or nested; gRPC
        ``fp32_contents``) as the checked ``header``'s array.

        Raises:
            InputError: non-numbers, or a count that does not match the shape.
        """
        try:
            arr = np.asarray(values)
            if arr.dtype.kind not in "fiu":  # no strings, booleans or objects taken as numbers
                raise TypeError(arr.dtype)
            with np.errstate(over="ignore"):  # beyond float32: infinity, refused by the scorer
                arr = arr.astype(np.float32, copy=False)
        except (ValueError, TypeError, OverflowError):
            raise InputError(
                f"input {header.name!r}: 'data' must be numbers, row-major "
                f"({element_count(header.shape)} of them, flat or nested as the shape)"
            ) from None
        if arr.size != element_count(header.shape):
            raise InputError(
                f"input {header.name!r} has {arr.size} values; its shape "
                f"{list(header.shape)} needs {element_count(header.shape)}"
            )
        return arr.reshape(header.shape)

    def units(self, parameters: Mapping[str, object]) -> Units:
        """The units the request declares (``acc_unit``, ``gyro_unit``; default canonical).

        Raises:
            InputError: a unit that is not a string or not known.
        """
        fields: dict[str, object] = {}
        for param, key in UNIT_PARAMETERS.items():
            if param in parameters:
                value = parameters[param]
                if not isinstance(value, str):
                    raise InputError(f"parameter {param!r} must be a string")
                fields[key] = value
        return Units.parse(fields)

    def outputs(self, names: Sequence[str]) -> tuple[str, ...]:
        """The outputs to answer: ``names`` (checked), or all when it is empty.

        Raises:
            InputError: an unknown or repeated output name.
        """
        known = (PROBABILITIES, ACTIVITY_ID)
        if not names:
            return known
        for n in names:
            if n not in known:
                raise InputError(
                    f"unknown output {quoted(n)}; the model's outputs are {list(known)}"
                )
        if len(set(names)) != len(names):
            raise InputError("an output is requested more than once")
        return tuple(names)

    async def infer(self, request: Inference) -> list[OutputTensor]:
        """Score the windows through :meth:`Scorer.predict_checked` (``/predict``'s path after
        its count and shape check, which :meth:`check_inputs` made); the requested outputs,
        in order.

        Raises:
            InputError: NaN or infinity, units that make the values overflow.
            ModelUnavailableError: the model service cannot answer now.
        """
        preds = await self.scorer.predict_checked(request.windows, request.units)
        arrays: dict[str, tuple[str, np.ndarray]] = {
            PROBABILITIES: ("FP32", preds.probs),
            ACTIVITY_ID: ("INT64", np.asarray(preds.class_ids, np.int64)),
        }
        return [OutputTensor(n, *arrays[n]) for n in request.outputs]


def element_count(shape: Sequence[int]) -> int:
    """Elements of a tensor of ``shape`` (negative dimensions count as 0)."""
    return math.prod(max(int(d), 0) for d in shape)
