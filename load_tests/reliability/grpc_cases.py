"""Malformed gRPC input (issue 10, items 2 and 4): every answer must be OK or a
rejection code (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...), never UNKNOWN / INTERNAL,
and an OK answer must carry finite numbers.

Raw bytes that are not a valid message go through a generic ``channel.unary_unary`` /
``stream_stream`` with identity serializers, so they reach the server undecoded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc

from har.v1 import har_pb2, har_pb2_grpc

from .common import GET_MODEL, PREDICT, REJECTED_GRPC, STREAM, Result, grpc_code
from .servers import Target

#: Byte strings that do not parse as the methods' messages (bad wire types, lengths).
GARBAGE = (
    b"\xff\xff\xff\xff",
    b"\x0a\xff\xff\xff\xff\x0f",  # field 1, length-delimited, length past the end
    b"\x0a\x05\x0a\x03\x0d\x00",  # a Window whose packed floats are cut short
    b"\x07",  # wire type 7 does not exist
    bytes(range(256)),
)
TIMEOUT = 30.0


def _identity(b: bytes) -> bytes:
    return b


def _rejected(r: Result, code: grpc.StatusCode, what: str) -> None:
    r.grpc(code, what)
    r.expect(code in REJECTED_GRPC, f"{what.strip()}: {code.name}")


def raw_bytes(t: Target) -> Result:
    """Bytes that are not a valid message, to Predict, GetModel and StreamPredict."""
    r = Result("grpc: bytes that are not a message")
    with grpc.insecure_channel(t.grpc) as ch:
        for method in (PREDICT, GET_MODEL):
            call = ch.unary_unary(method, request_serializer=_identity, response_deserializer=None)
            for i, raw in enumerate(GARBAGE):
                code, _ = grpc_code(lambda raw=raw, call=call: call(raw, timeout=TIMEOUT))
                _rejected(r, code, f"{method.rsplit('/', 1)[1]}#{i} ")
        stream = ch.stream_stream(STREAM, request_serializer=_identity, response_deserializer=None)
        for i, raw in enumerate(GARBAGE[:3]):
            code, _ = grpc_code(
                lambda raw=raw: list(stream(iter([raw]), timeout=TIMEOUT))  # type: ignore[misc]
            )
            _rejected(r, code, f"StreamPredict#{i} ")
    return r


def _predict(stub: har_pb2_grpc.ActivityRecognitionStub, req: har_pb2.PredictRequest) -> tuple:
    return grpc_code(lambda: stub.Predict(req, timeout=TIMEOUT))


def _window(values: list[float]) -> har_pb2.Window:
    return har_pb2.Window(values=values)


def bad_windows(t: Target) -> Result:
    """Wrong value counts, NaN / inf, empty requests and windows, too many windows."""
    r = Result("grpc: bad windows (counts, NaN, empty, many)")
    ok = [0.1, 0.1, 9.81, 0.1, 0.1, 0.1] * 200
    cases = {
        "1199 values ": [_window(ok[:-1])],
        "1201 values ": [_window([*ok, 0.0])],
        "empty window ": [_window([])],
        "NaN ": [_window([math.nan] * 1200)],
        "inf ": [_window([math.inf, *ok[1:]])],
        "10,000 windows ": [_window(ok)] * 10_000,
    }
    with grpc.insecure_channel(t.grpc) as ch:
        stub = har_pb2_grpc.ActivityRecognitionStub(ch)
        for what, windows in cases.items():
            _rejected(r, _predict(stub, har_pb2.PredictRequest(windows=windows))[0], what)
        code, resp = _predict(stub, har_pb2.PredictRequest())
        r.grpc(code, "no windows ")
        if code == grpc.StatusCode.OK:
            r.expect(len(resp.predictions) == 0, "no windows: predictions returned")
        else:
            r.expect(code in REJECTED_GRPC, f"no windows: {code.name}")
        bad_unit = har_pb2.PredictRequest(windows=[_window(ok)], units=har_pb2.Units(acc="furlong"))
        _rejected(r, _predict(stub, bad_unit)[0], "unknown unit ")
    return r


def huge_message(t: Target) -> Result:
    """A message over the server's size limit: RESOURCE_EXHAUSTED, not a crash."""
    r = Result("grpc: message over the size limit")
    n = t.max_body // (1200 * 4) + 2
    req = har_pb2.PredictRequest(windows=[_window([0.5] * 1200)] * n)
    opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(t.grpc, options=opts) as ch:
        code, _ = _predict(har_pb2_grpc.ActivityRecognitionStub(ch), req)
    _rejected(r, code, f"{req.ByteSize() // 1024} KiB ")
    return r


def overflow_after_units(t: Target) -> Result:
    """3e38 declared as g overflows float32 after conversion: must be refused."""
    r = Result("grpc: 3e38 declared as g")
    req = har_pb2.PredictRequest(
        windows=[_window([3e38, 3e38, 3e38, 0.0, 0.0, 0.0] * 200)], units=har_pb2.Units(acc="g")
    )
    with grpc.insecure_channel(t.grpc) as ch:
        code, resp = _predict(har_pb2_grpc.ActivityRecognitionStub(ch), req)
    r.grpc(code)
    if code == grpc.StatusCode.OK:
        conf = [p.confidence for p in resp.predictions]
        r.expect(False, f"OK with confidence {conf}")
    return r


def _chunk(times: list[float], value: float = 0.1, **kw: object) -> har_pb2.SensorChunk:
    values = [value, value, 9.81, value, value, value] * len(times)
    return har_pb2.SensorChunk(timestamps=times, values=values, **kw)  # type: ignore[arg-type]


def _stream(ch: grpc.Channel, chunks: list[har_pb2.SensorChunk]) -> tuple:
    stub = har_pb2_grpc.ActivityRecognitionStub(ch)
    return grpc_code(lambda: list(stub.StreamPredict(iter(chunks), timeout=TIMEOUT)))


def bad_stream_chunks(t: Target) -> Result:
    """StreamPredict with chunks that are wrong in every way a client can get them wrong."""
    r = Result("grpc: bad stream chunks")
    mismatched = har_pb2.SensorChunk(timestamps=[0.0, 0.02], values=[0.1] * 7)
    cases = {
        "values/timestamps mismatch ": [mismatched],
        "time going back ": [_chunk([1.0, 1.02]), _chunk([0.5, 0.52])],
        "NaN timestamp ": [_chunk([0.0, math.nan])],
        "NaN value ": [_chunk([0.0, 0.02], value=math.nan)],
        "units changed mid-stream ": [
            _chunk([0.0, 0.02]),
            _chunk([0.04], units=har_pb2.Units(acc="g")),
        ],
        "unknown unit ": [_chunk([0.0], units=har_pb2.Units(gyro="furlong/s"))],
    }
    with grpc.insecure_channel(t.grpc) as ch:
        for what, chunks in cases.items():
            _rejected(r, _stream(ch, chunks)[0], what)
    return r


def _gapped(gap: float, n: int) -> Iterator[har_pb2.SensorChunk]:
    for i in range(n):
        yield _chunk([i * gap])


def stream_huge_gaps(t: Target) -> Result:
    """1-sample chunks 1e12 s apart: bounded work (split or refuse), never INTERNAL."""
    r = Result("grpc: stream, 1-sample chunks 1e12 s apart")
    with grpc.insecure_channel(t.grpc) as ch:
        code, answers = _stream(ch, list(_gapped(1e12, 4)))
        r.grpc(code)
        r.expect(code == grpc.StatusCode.OK or code in REJECTED_GRPC, f"{code.name}")
        if answers:
            r.expect(False, f"{len(answers)} windows predicted from 4 samples")
    return r


#: Every gRPC case, in the order the harness runs them.
CASES = (
    raw_bytes,
    bad_windows,
    huge_message,
    overflow_after_units,
    bad_stream_chunks,
    stream_huge_gaps,
)
