"""The gRPC server's metrics, spans and fault hook (har/grpc/observability.py), on a real
in-process ``grpc.aio`` server with the fake model of tests/helpers/grpc_fake.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from har.core.access import Access
from har.core.open_inference import InferenceModel
from har.core.scorer import Scorer
from har.grpc.observability import ObservabilityInterceptor, split_method, status_of
from har.grpc.service import start_grpc_server, stop_grpc_server
from har.monitoring.metrics import grpc_metrics, model_call_metrics
from har.oip import open_inference_grpc_pb2 as oip_pb
from har.oip import open_inference_grpc_pb2_grpc as oip_grpc
from har.serving.model_client import ModelClient
from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.grpc_fake import CARD, TAG, chunks, fake_infer, recording, request, windows

SVC = "har.v1.ActivityRecognition"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _handled(method: str, code: str, kind: str = "unary", service: str = SVC) -> float:
    return _value(
        "har_grpc_server_handled_total",
        grpc_service=service,
        grpc_method=method,
        grpc_type=kind,
        grpc_code=code,
    )


def _run(
    scenario: Callable[[grpc.aio.Channel], Awaitable[None]],
    *,
    tracer: object = None,
    fault_injection: bool = True,
    tokens: tuple[str, ...] = (),
) -> None:
    async def main() -> None:
        model = ModelClient(
            fake_infer,
            fake_infer,
            max_batch_size=64,
            coalesce_inflight=1,
            coalesce_fill=True,
            metrics=model_call_metrics(),
            tracer=tracer,
            fault_injection=fault_injection,
        )
        interceptor = ObservabilityInterceptor(
            grpc_metrics(), tracer, fault_injection=fault_injection
        )
        scorer = Scorer(CARD, TAG, model)
        handle = await start_grpc_server(
            scorer,
            "127.0.0.1",
            0,
            max_message_bytes=8 << 20,
            interceptors=[interceptor, *Access(tokens=tokens).grpc_interceptors()],
            inference=InferenceModel(scorer),
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                await scenario(channel)
        finally:
            await stop_grpc_server(handle, grace=0.5)

    asyncio.run(main())


def test_calls_are_counted_by_service_method_and_code() -> None:
    before = {
        "ok": _handled("Predict", "OK"),
        "invalid": _handled("Predict", "INVALID_ARGUMENT"),
        "internal": _handled("Predict", "INTERNAL"),
        "unavailable": _handled("Predict", "UNAVAILABLE"),
        "health": _handled("Check", "OK", service="grpc.health.v1.Health"),
        "unknown": _handled("unknown", "UNIMPLEMENTED", "unknown", "unknown"),
        "latency": _value(
            "har_grpc_server_handling_seconds_count", grpc_service=SVC, grpc_method="Predict"
        ),
        "fast": _value(
            "har_grpc_server_handling_seconds_bucket",
            grpc_service=SVC,
            grpc_method="Predict",
            le="0.005",
        ),
    }

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        for _ in range(3):
            await stub.Predict(request(windows(2)))
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Predict(har_pb2.PredictRequest(windows=[har_pb2.Window(values=[1.0])]))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for fault, code in (
            ("internal", grpc.StatusCode.INTERNAL),
            ("unavailable", grpc.StatusCode.UNAVAILABLE),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Predict(request(windows(1)), metadata=(("x-har-fault", fault),))
            assert err.value.code() == code, err.value.details()
        health = health_pb2_grpc.HealthStub(channel)
        await health.Check(health_pb2.HealthCheckRequest(service=""))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await channel.unary_unary("/no.such.Service/Nope")(b"")
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED

    _run(scenario)
    assert _handled("Predict", "OK") - before["ok"] == 3
    assert _handled("Predict", "INVALID_ARGUMENT") - before["invalid"] == 1
    assert _handled("Predict", "INTERNAL") - before["internal"] == 1
    assert _handled("Predict", "UNAVAILABLE") - before["unavailable"] == 1
    assert _handled("Check", "OK", service="grpc.health.v1.Health") - before["health"] == 1
    # an unknown method never becomes a label value of its own
    assert _handled("unknown", "UNIMPLEMENTED", "unknown", "unknown") - before["unknown"] == 1
    assert not [
        s
        for m in REGISTRY.collect()
        for s in m.samples
        if s.labels.get("grpc_service") == "no.such.Service"
    ]
    count = _value(
        "har_grpc_server_handling_seconds_count", grpc_service=SVC, grpc_method="Predict"
    )
    assert count - before["latency"] == 6
    # the fake model answers in well under 5 ms: the buckets resolve it
    fast = _value(
        "har_grpc_server_handling_seconds_bucket",
        grpc_service=SVC,
        grpc_method="Predict",
        le="0.005",
    )
    assert fast - before["fast"] >= 1


def test_faults_are_ignored_unless_injection_is_on() -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        reply = await stub.Predict(request(windows(1)), metadata=(("x-har-fault", "internal"),))
        assert len(reply.predictions) == 1

    _run(scenario, fault_injection=False)


def test_streams_count_messages_and_open_streams_and_a_failing_stream() -> None:
    labels = {"grpc_service": SVC, "grpc_method": "StreamPredict"}
    got0 = _value("har_grpc_server_msg_received_total", **labels)
    sent0 = _value("har_grpc_server_msg_sent_total", **labels)
    ok0 = _handled("StreamPredict", "OK", "bidi_stream")
    bad0 = _handled("StreamPredict", "INTERNAL", "bidi_stream")
    t, v = recording(50, 20)
    sent_chunks = chunks(t, v, seed=3)
    replies: list[object] = []
    open_during: list[float] = []

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)

        async for m in stub.StreamPredict(iter(sent_chunks)):
            if not replies:  # the server is inside the stream
                open_during.append(_value("har_grpc_server_open_streams", **labels))
            replies.append(m)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            call = stub.StreamPredict(iter(sent_chunks), metadata=(("x-har-fault", "internal"),))
            _ = [m async for m in call]
        assert err.value.code() == grpc.StatusCode.INTERNAL

    _run(scenario)
    assert replies
    assert open_during == [1.0]
    assert _value("har_grpc_server_open_streams", **labels) == 0
    got = _value("har_grpc_server_msg_received_total", **labels) - got0
    assert got >= len(sent_chunks) + 1  # the whole healthy stream, the failing one's first
    assert _value("har_grpc_server_msg_sent_total", **labels) - sent0 == len(replies)
    assert _handled("StreamPredict", "OK", "bidi_stream") - ok0 == 1
    assert _handled("StreamPredict", "INTERNAL", "bidi_stream") - bad0 == 1


def test_model_calls_are_measured_as_served() -> None:
    rows0 = _value("har_model_call_rows_sum", model="served")
    calls0 = _value("har_model_call_seconds_count", model="served")
    wait0 = _value("har_model_call_wait_seconds_count", model="served")

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        await asyncio.gather(*(stub.Predict(request(windows(3))) for _ in range(4)))

    _run(scenario)
    assert _value("har_model_call_rows_sum", model="served") - rows0 == 12
    calls = _value("har_model_call_seconds_count", model="served") - calls0
    assert 1 <= calls <= 4  # concurrent requests may share a call
    assert _value("har_model_call_wait_seconds_count", model="served") - wait0 == calls
    assert _value("har_model_calls_in_flight", model="served") == 0
    assert _value("har_model_callers", model="served") == 0


def test_a_grpc_call_is_a_server_span_with_the_model_call_as_its_child() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    trace_id = 0x1234567890ABCDEF1234567890ABCDEF
    parent = f"00-{trace_id:032x}-{0xABCDEF:016x}-01"

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        await stub.Predict(request(windows(2)), metadata=(("traceparent", parent),))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Predict(request(windows(1)), metadata=(("x-har-fault", "internal"),))

    _run(scenario, tracer=tracer)
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == [f"{SVC}/Predict"] * 2
    ok, failed = servers
    assert ok.context.trace_id == trace_id and ok.parent.span_id == 0xABCDEF
    assert ok.attributes["rpc.grpc.status_code"] == 0 and ok.status.is_ok
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert not failed.status.is_ok
    (model_call,) = [s for s in spans if s.name == "har.model_call"]
    assert model_call.parent.span_id == ok.context.span_id
    assert model_call.context.trace_id == trace_id
    assert model_call.attributes["har.rows"] == 2 and model_call.attributes["har.model"] == "served"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/har.v1.ActivityRecognition/Predict", (SVC, "Predict")),
        ("/grpc.health.v1.Health/Check", ("grpc.health.v1.Health", "Check")),
        ("garbage", ("unknown", "unknown")),
        ("/Service/", ("unknown", "unknown")),
    ],
)
def test_split_method(path: str, expected: tuple[str, str]) -> None:
    assert split_method(path) == expected


class _Context:
    def __init__(self, code: object, remaining: float | None) -> None:
        self._code, self._remaining = code, remaining

    def code(self) -> object:
        return self._code

    def time_remaining(self) -> float | None:
        return self._remaining


def test_status_of_a_call() -> None:
    assert status_of(_Context(None, 5.0), None) == grpc.StatusCode.OK
    assert status_of(_Context(None, 5.0), ValueError()) == grpc.StatusCode.UNKNOWN
    assert status_of(_Context(13, 5.0), Exception()) == grpc.StatusCode.INTERNAL
    aborted = _Context(grpc.StatusCode.UNAVAILABLE, 5.0)
    assert status_of(aborted, Exception()) == grpc.StatusCode.UNAVAILABLE
    cancelled = asyncio.CancelledError()
    assert status_of(_Context(None, 0.0), cancelled) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_of(_Context(None, 3.0), cancelled) == grpc.StatusCode.CANCELLED


def test_calls_refused_by_the_token_check_are_counted_streams_included() -> None:
    """The token interceptor (inside this one) refuses with handlers that are coroutines,
    not async generators, also for streaming methods: they must pass through unchanged."""
    unary0 = _handled("Predict", "UNAUTHENTICATED")
    stream0 = _handled("StreamPredict", "UNAUTHENTICATED", "bidi_stream")
    t, v = recording(50, 5)

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.Predict(request(windows(1)))
        assert unary.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as stream:
            _ = [m async for m in stub.StreamPredict(iter(chunks(t, v, seed=1)))]
        assert stream.value.code() == grpc.StatusCode.UNAUTHENTICATED, stream.value.details()
        ok = await stub.Predict(request(windows(1)), metadata=(("authorization", "Bearer s3cret"),))
        assert len(ok.predictions) == 1

    _run(scenario, tokens=("s3cret",))
    assert _handled("Predict", "UNAUTHENTICATED") - unary0 == 1
    assert _handled("StreamPredict", "UNAUTHENTICATED", "bidi_stream") - stream0 == 1


def test_every_service_on_the_server_is_counted_the_open_inference_protocol_too() -> None:
    v2 = "inference.GRPCInferenceService"
    before = _handled("ServerLive", "OK", service=v2)

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        assert (await stub.ServerLive(oip_pb.ServerLiveRequest())).live

    _run(scenario)
    assert _handled("ServerLive", "OK", service=v2) - before == 1
