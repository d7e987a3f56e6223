"""The Open Inference Protocol's gRPC binding: ``inference.GRPCInferenceService``
(``har/oip/open_inference_grpc.proto``) over :class:`har.core.open_inference.InferenceModel`.

Served by the same ``grpc.aio`` server as ``har.v1`` (:func:`har.grpc.service.start_grpc_server`
adds it), so the same interceptors (bearer tokens), TLS, message-size bound and reflection apply.

``ModelInfer`` takes the input ``windows`` as ``raw_input_contents`` (little-endian FP32,
row-major; what ``tritonclient.grpc`` and KServe's ``InferenceGRPCClient`` send) or as
``contents.fp32_contents``, the units in the request parameters ``acc_unit`` / ``gyro_unit``,
and answers every requested output (all when none is named) as ``raw_output_contents``.

Errors: an unknown model or version is ``NOT_FOUND``; any other mistake of the request
``INVALID_ARGUMENT`` with a message; a model service that cannot answer ``UNAVAILABLE``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc

from har.core.open_inference import Inference, InferenceModel, ModelNotFoundError, TensorHeader
from har.domain.errors import InputError
from har.grpc.errors import abort
from har.oip import open_inference_grpc_pb2 as pb
from har.oip import open_inference_grpc_pb2_grpc as pb_grpc

#: Fully qualified name of the service (reflection and health use it).
V2_SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


def parameters_of(params: Mapping[str, pb.InferParameter]) -> dict[str, object]:
    """A protobuf ``map<string, InferParameter>`` as plain Python values."""
    out: dict[str, object] = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        out[key] = getattr(p, which) if which else None
    return out


def decode_request(model: InferenceModel, request: pb.ModelInferRequest) -> Inference:
    """A ``ModelInferRequest`` as an :class:`Inference` (model name and version checked).

    Raises:
        ModelNotFoundError: another model or version than the served one.
        InputError: the input's name, datatype, shape or data, a unit or an output.
    """
    model.check_model(request.model_name, request.model_version)
    headers = [TensorHeader(t.name, t.datatype, tuple(t.shape)) for t in request.inputs]
    header = model.check_inputs(headers)
    tensor = request.inputs[0]
    contents = tensor.contents
    filled = [f.name for f, _ in contents.ListFields()] if tensor.HasField("contents") else []
    raw = request.raw_input_contents
    if raw:
        if len(raw) != 1:
            raise InputError(f"{len(raw)} raw_input_contents for 1 input")
        if filled:
            raise InputError(f"input {header.name!r} has both raw_input_contents and contents")
        windows = model.decode_raw(header, raw[0])
    else:
        if filled not in ([], ["fp32_contents"]):
            raise InputError(
                f"input {header.name!r} is FP32: its data goes in contents.fp32_contents "
                f"or raw_input_contents, not {', '.join(filled)}"
            )
        windows = model.decode_values(header, contents.fp32_contents)
    units = model.units(parameters_of(request.parameters))
    outputs = model.outputs([o.name for o in request.outputs])
    return Inference(windows, units, outputs)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` on a ``grpc.aio`` server.

    Args:
        model: the served model as the protocol presents it (its scorer is ``Predict``'s).
    """

    def __init__(self, model: InferenceModel) -> None:
        self.model = model

    async def _check_model(
        self, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> None:
        """End the call ``NOT_FOUND`` unless ``request`` names the served model (and version)."""
        try:
            self.model.check_model(request.name, request.version)
        except ModelNotFoundError as exc:
            await abort(context, method, exc)

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        """Always live while it answers."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        """Ready when the model service answers (the HTTP ``/readyz`` check)."""
        return pb.ServerReadyResponse(ready=await self.model.ready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        """The served model's readiness; ``NOT_FOUND`` for another name or version."""
        await self._check_model(request, context, "ModelReady")
        return pb.ModelReadyResponse(ready=await self.model.ready())

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """The server's name, version and protocol extensions."""
        return pb.ServerMetadataResponse(**self.model.server_metadata())

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """Inputs, outputs and properties (classes, window, units) of the served model."""
        await self._check_model(request, context, "ModelMetadata")
        meta = self.model.model_metadata()
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
            properties=meta["properties"],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        """Score the windows (``/predict``'s path); the outputs as ``raw_output_contents``."""
        try:
            if isinstance(request, _Undecodable):
                raise InputError("the request is not a valid inference.ModelInferRequest")
            outputs = await self.model.infer(decode_request(self.model, request))
        except Exception as exc:
            await abort(context, "ModelInfer", exc)
        return pb.ModelInferResponse(
            model_name=self.model.name,
            model_version=self.model.version,
            id=request.id,
            outputs=[
                pb.ModelInferResponse.InferOutputTensor(
                    name=o.name, datatype=o.datatype, shape=o.shape
                )
                for o in outputs
            ],
            raw_output_contents=[o.raw() for o in outputs],
        )


class _Undecodable:
    """What the request deserializer returns for bytes that are not a ``ModelInferRequest``."""


def _safe(cls: Any) -> Callable[[bytes], object]:
    def deserialize(data: bytes) -> object:
        try:
            return cls.FromString(data)
        except Exception:  # DecodeError and its relatives: the client's bytes, not our fault
            return _Undecodable() if cls is pb.ModelInferRequest else cls()

    return deserialize


def add_inference_servicer(model: InferenceModel, server: grpc.aio.Server) -> str:
    """Add ``inference.GRPCInferenceService`` for ``model`` to ``server`` (deserializers that
    never raise: an undecodable ``ModelInferRequest`` is ``INVALID_ARGUMENT``, not
    ``INTERNAL``); returns the service's full name for reflection."""
    servicer = InferenceServicer(model)
    methods = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
    handlers = {}
    for method in methods:
        request_cls = getattr(pb, method.input_type.name)
        response_cls = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_safe(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V2_SERVICE_NAME, handlers),)
    )
    server.add_registered_method_handlers(V2_SERVICE_NAME, handlers)
    return V2_SERVICE_NAME


__all__ = [
    "V2_SERVICE_NAME",
    "InferenceServicer",
    "add_inference_servicer",
    "decode_request",
    "parameters_of",
]
