"""gRPC as a user calls it, on the target: health, reflection, ``Predict``, ``GetModel``,
``StreamPredict`` across chunk boundaries with its summary, INVALID_ARGUMENT for bad input."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from har.domain.preprocessing import Preprocessor
from har.domain.recordings import read_csv_recording
from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.paths import PRODUCTION


@pytest.fixture(scope="module")
def channel(served):
    with grpc.insecure_channel(served.grpc_target) as ch:
        yield ch


def test_health_and_reflection(channel):
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    reply = next(
        stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in reply.list_services_response.service}
    assert {"har.v1.ActivityRecognition", "grpc.health.v1.Health"} <= names


def test_predict_and_get_model(channel, served_tag, reference, heldout_windows):
    model, card = reference
    x = heldout_windows["windows"][:8]
    stub = har_pb2_grpc.ActivityRecognitionStub(channel)
    req = har_pb2.PredictRequest(windows=[har_pb2.Window(values=w.ravel()) for w in x])
    resp = stub.Predict(req, timeout=30)
    assert resp.model == served_tag
    want = np.asarray(model(Preprocessor(card).scale(x), training=False))
    np.testing.assert_allclose([list(p.probabilities) for p in resp.predictions], want, atol=1e-5)
    assert [p.activity for p in resp.predictions] == [card.classes[i] for i in want.argmax(1)]
    info = stub.GetModel(har_pb2.GetModelRequest(), timeout=10)
    assert info.tag == served_tag and list(info.classes) == card.classes
    assert info.window == card.window


@pytest.mark.parametrize(
    "request_",
    [
        har_pb2.PredictRequest(windows=[har_pb2.Window(values=[1.0] * 7)]),
        har_pb2.PredictRequest(windows=[har_pb2.Window(values=[float("nan")] * 1200)]),
        har_pb2.PredictRequest(),
    ],
    ids=["shape", "nan", "empty"],
)
def test_bad_predict_is_invalid_argument(channel, request_):
    stub = har_pb2_grpc.ActivityRecognitionStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details()
    ok = har_pb2.PredictRequest(windows=[har_pb2.Window(values=[0.0] * 1200)])
    assert len(stub.Predict(ok, timeout=30).predictions) == 1  # still serving


def test_stream_across_chunk_boundaries_with_summary(channel, reference):
    model, card = reference
    rec = read_csv_recording(PRODUCTION / "session_canonical_100hz.csv")
    n = min(len(rec), 100 * 40)  # 40 s at 100 Hz
    t, v = rec.time[:n], rec.values[:n]
    offline = Preprocessor(card).windows(t, v)
    want = np.asarray(model(Preprocessor(card).scale(offline.values), training=False))
    sizes = [1, 7, 64, 333, 50]

    def chunks():
        i, k = 0, 0
        while i < n:
            step = sizes[k % len(sizes)]
            yield har_pb2.SensorChunk(
                timestamps=t[i : i + step], values=v[i : i + step].ravel(), summary=i == 0
            )
            i, k = i + step, k + 1

    out = list(har_pb2_grpc.ActivityRecognitionStub(channel).StreamPredict(chunks(), timeout=60))
    *windows, last = out
    assert [o.index for o in windows] == list(range(len(offline)))
    np.testing.assert_allclose([o.start for o in windows], offline.start_s, atol=1e-6)
    got = np.array([list(o.prediction.probabilities) for o in windows])
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert last.HasField("summary") and last.summary.windows == len(windows)
    assert sum(s.windows for s in last.summary.segments) == len(windows)
