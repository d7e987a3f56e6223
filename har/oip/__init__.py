"""The Open Inference Protocol ("KServe V2") gRPC API, vendored: ``open_inference_grpc.proto``
and the code generated from it.

``open_inference_grpc.proto`` is a verbatim copy of
``specification/protocol/open_inference_grpc.proto`` from
https://github.com/kserve/open-inference-protocol (commit d49cc23, 2025-05-11), Apache-2.0
(``LICENSE`` beside it). Its package is ``inference`` and its service
``inference.GRPCInferenceService``: the same messages, field numbers and method paths as
Triton's ``grpc_service.proto`` subset that ``tritonclient.grpc`` and KServe's
``InferenceGRPCClient`` call.

``open_inference_grpc_pb2.py``, ``.pyi`` and ``open_inference_grpc_pb2_grpc.py`` are generated
by protoc (grpcio-tools): DO NOT EDIT them. Regenerate from the repository root with
``make proto``, that is::

    .venv/bin/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \\
        --grpc_python_out=. har/oip/open_inference_grpc.proto

The servicer is :mod:`har.grpc.v2_service`.
"""
