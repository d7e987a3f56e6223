"""inference.GRPCInferenceService (har/grpc/v2_service.py) on a real in-process grpc.aio server
(``start_grpc_server`` with the V2 model): raw and fp32 contents, status codes, undecodable
bytes, health, reflection and tokens."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from har.core.access import Access
from har.grpc.service import start_grpc_server
from har.oip import open_inference_grpc_pb2 as pb
from har.oip import open_inference_grpc_pb2_grpc as pb_grpc
from tests.helpers.v2_model import v2_model, windows

WINDOWS = windows(2)


def infer_request(**fields) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="windows", datatype="FP32", shape=[2, 20, 6]
    )
    return pb.ModelInferRequest(**{"model_name": "t", "inputs": [tensor], **fields})


async def serve_and_call(calls, tokens=(), metadata=None):
    """Start the server, run ``calls(stub, channel)`` and return its result."""
    model, monitor = v2_model()
    server = await start_grpc_server(
        model.scorer,
        "127.0.0.1",
        0,
        max_message_bytes=1 << 20,
        interceptors=Access(tokens=tokens).grpc_interceptors(),
        inference=model,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            return await calls(pb_grpc.GRPCInferenceServiceStub(channel), channel), model, monitor
    finally:
        await server.stop(0)


def run(calls, **kw):
    return asyncio.run(serve_and_call(calls, **kw))


def test_infer_raw_and_fp32_contents_equal_the_scorer():
    async def calls(stub, _):
        raw = await stub.ModelInfer(infer_request(raw_input_contents=[WINDOWS.tobytes()], id="a"))
        contents = pb.InferTensorContents(fp32_contents=WINDOWS.ravel().tolist())
        req = infer_request()
        req.inputs[0].contents.CopyFrom(contents)
        req.outputs.add(name="activity_id")
        listed = await stub.ModelInfer(req)
        return raw, listed

    (raw, listed), model, monitor = run(calls)
    want = asyncio.run(model.scorer.predict(WINDOWS))
    assert (raw.model_name, raw.model_version, raw.id) == ("t", "v1", "a")
    assert [(o.name, o.datatype, list(o.shape)) for o in raw.outputs] == [
        ("probabilities", "FP32", [2, 3]),
        ("activity_id", "INT64", [2]),
    ]
    np.testing.assert_array_equal(
        np.frombuffer(raw.raw_output_contents[0], "<f4").reshape(2, 3), want.probs
    )
    assert [o.name for o in listed.outputs] == ["activity_id"]
    np.testing.assert_array_equal(
        np.frombuffer(listed.raw_output_contents[0], "<i8"), want.class_ids
    )
    assert monitor.windows == 6  # two calls and the reference prediction


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (
            infer_request(model_name="x", raw_input_contents=[WINDOWS.tobytes()]),
            "NOT_FOUND",
            "unknown model",
        ),
        (
            infer_request(model_version="v9", raw_input_contents=[WINDOWS.tobytes()]),
            "NOT_FOUND",
            "unknown version",
        ),
        (infer_request(raw_input_contents=[b"\0" * 8]), "INVALID_ARGUMENT", "has 8 bytes of data"),
        (infer_request(raw_input_contents=[b"", b""]), "INVALID_ARGUMENT", "2 raw_input_contents"),
        (infer_request(), "INVALID_ARGUMENT", "has 0 values"),
        (
            infer_request(
                raw_input_contents=[WINDOWS.tobytes()],
                parameters={"acc_unit": pb.InferParameter(string_param="furlongs")},
            ),
            "INVALID_ARGUMENT",
            "furlongs",
        ),
    ],
)
def test_bad_requests_get_the_protocol_status(request_, code, words):
    async def calls(stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ModelInfer(request_)
        return err.value

    err, _, _ = run(calls)
    assert err.code().name == code and words in err.details()


def test_contents_in_the_wrong_field_and_both_forms():
    async def calls(stub, _):
        out = []
        wrong = infer_request()
        wrong.inputs[0].contents.fp64_contents.extend([0.0] * 240)
        both = infer_request(raw_input_contents=[WINDOWS.tobytes()])
        both.inputs[0].contents.fp32_contents.extend([0.0] * 240)
        for req in (wrong, both):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ModelInfer(req)
            out.append((err.value.code(), err.value.details()))
        return out

    (wrong, both), _, _ = run(calls)
    assert wrong[0] == grpc.StatusCode.INVALID_ARGUMENT and "not fp64_contents" in wrong[1]
    assert both[0] == grpc.StatusCode.INVALID_ARGUMENT and "both" in both[1]


def test_undecodable_bytes_are_invalid_argument():
    async def calls(_, channel):
        method = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await method(b"\xff\xff\xff\xff")
        return err.value

    err, _, _ = run(calls)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_metadata_health_and_reflection():
    async def calls(stub, channel):
        live = await stub.ServerLive(pb.ServerLiveRequest())
        ready = await stub.ModelReady(pb.ModelReadyRequest(name="t", version="v1"))
        server = await stub.ServerMetadata(pb.ServerMetadataRequest())
        meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name="t"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ModelMetadata(pb.ModelMetadataRequest(name="x"))
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
        )
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        await reflect.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await reflect.read()
        await reflect.done_writing()
        return live, ready, server, meta, err.value, health, listed

    (live, ready, server, meta, err, health, listed), _, _ = run(calls)
    assert live.live and ready.ready and server.name == "har"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("windows", "FP32", [-1, 20, 6])
    ]
    assert meta.properties["classes"] == "a,b,c"
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    names = {s.name for s in listed.list_services_response.service}
    assert {"inference.GRPCInferenceService", "har.v1.ActivityRecognition"} <= names


def test_tokens_are_enforced():
    async def calls(stub, _):
        request = infer_request(raw_input_contents=[WINDOWS.tobytes()])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ModelInfer(request)
        ok = await stub.ModelInfer(request, metadata=(("authorization", "Bearer tok"),))
        return err.value.code(), len(ok.outputs)

    (code, outputs), _, _ = run(calls, tokens=("tok",))
    assert code == grpc.StatusCode.UNAUTHENTICATED and outputs == 2
