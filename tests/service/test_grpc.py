"""The gRPC API's unary calls, health, reflection and stubs over a real in-process
``grpc.aio`` server and channel, with a fake model (tests/helpers/grpc_fake.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from har.core.scorer import Scorer
from har.domain.card import ModelCard
from har.domain.preprocessing import Preprocessor
from har.grpc.service import SERVICE_NAME, start_grpc_server, stop_grpc_server
from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.grpc_fake import (
    CARD,
    TAG,
    expect_invalid,
    fake_infer,
    fake_probs,
    request,
    serve,
    windows,
)
from tests.helpers.paths import ROOT


def test_predict_returns_one_prediction_per_window_in_order() -> None:
    w = windows(5)
    want = fake_probs(Preprocessor(CARD).scale(w))

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        resp = await stub.Predict(request(w))
        assert resp.model == TAG
        assert len(resp.predictions) == 5
        for p, row in zip(resp.predictions, want, strict=True):
            assert p.activity_id == int(row.argmax())
            assert p.activity == CARD.classes[p.activity_id]
            assert p.confidence == pytest.approx(row.max(), rel=1e-6)
            np.testing.assert_allclose(p.probabilities, row, rtol=1e-6)
        # the same windows in g and rad/s give the same answer
        other = w / np.array([9.80665] * 3 + [180 / math.pi] * 3, np.float32)
        resp2 = await stub.Predict(request(other, acc="g", gyro="rad/s"))
        got2 = np.array([p.probabilities for p in resp2.predictions])
        np.testing.assert_allclose(got2, want, atol=1e-5)

    serve(scenario)


@pytest.mark.parametrize(
    ("mangle", "fragments"),
    [
        (lambda r: r.windows[1].values.pop(), ["window 1 has 239 values", "needs 240"]),
        (lambda r: r.windows[2].values.__setitem__(13, math.nan), ["NaN or infinity", "window 2"]),
        (
            lambda r: r.units.CopyFrom(har_pb2.Units(acc="furlong")),
            ["accelerometer unit 'furlong'"],
        ),
        (lambda r: r.units.CopyFrom(har_pb2.Units(gyro="rpm")), ["gyroscope unit 'rpm'"]),
        (lambda r: r.ClearField("windows"), ["N >= 1", "got (0, 40, 6)"]),
    ],
    ids=["short-window", "nan", "acc-unit", "gyro-unit", "no-windows"],
)
def test_predict_rejects_bad_input_and_keeps_serving(mangle, fragments: list[str]) -> None:
    bad = request(windows(3))
    mangle(bad)

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        await expect_invalid(stub.Predict(bad), *fragments)
        assert len((await stub.Predict(request(windows(2)))).predictions) == 2

    serve(scenario)


def test_predict_internal_error_is_internal_not_invalid_argument() -> None:
    async def broken(scaled: np.ndarray) -> np.ndarray:
        raise RuntimeError("model worker died")

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Predict(request(windows(1)))
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "RuntimeError" in info.value.details()

    serve(scenario, Scorer(CARD, TAG, broken))


def test_get_model_describes_the_served_model() -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        info = await har_pb2_grpc.ActivityRecognitionStub(channel).GetModel(
            har_pb2.GetModelRequest()
        )
        assert info.tag == TAG
        assert list(info.classes) == CARD.classes
        assert (info.window, info.hop, info.sample_rate_hz) == (40, 20, 50.0)
        assert list(info.channels) == CARD.channels
        assert ModelCard.model_validate(json.loads(info.card_json)) == CARD

    serve(scenario)


def test_health_serving_and_not_serving_after_stop() -> None:
    async def main() -> None:
        handle = await start_grpc_server(
            Scorer(CARD, TAG, fake_infer), "127.0.0.1", 0, max_message_bytes=1 << 20
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for name in ("", SERVICE_NAME):
                resp = await stub.Check(health_pb2.HealthCheckRequest(service=name))
                assert resp.status == health_pb2.HealthCheckResponse.SERVING
        await stop_grpc_server(handle, grace=0.1)
        after = await handle.health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), None)
        assert after.status == health_pb2.HealthCheckResponse.NOT_SERVING

    asyncio.run(main())


def test_reflection_lists_and_describes_the_service() -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        reqs = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
        ]
        listed, described = [m async for m in stub.ServerReflectionInfo(iter(reqs))]
        names = {s.name for s in listed.list_services_response.service}
        assert {"har.v1.ActivityRecognition", "grpc.health.v1.Health"} <= names
        assert described.file_descriptor_response.file_descriptor_proto

    serve(scenario)


def test_predict_round_trip_overhead() -> None:
    """Servicer + channel cost of a one-window Predict (fake model, same process)."""
    req = request(windows(1))
    times: list[float] = []

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        for i in range(600):
            t0 = time.perf_counter()
            await stub.Predict(req)
            if i >= 100:  # after warm-up
                times.append(time.perf_counter() - t0)

    serve(scenario)
    median_us = statistics.median(times) * 1e6
    print(f"Predict round trip, 1 window, fake model: median {median_us:.0f} us")
    assert median_us < 20_000  # generous: a guard against blocking work, not a benchmark


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    """``make proto`` would not change the committed generated code."""
    (tmp_path / "har" / "v1").mkdir(parents=True)
    (tmp_path / "har" / "v1" / "har.proto").write_bytes((ROOT / "har/v1/har.proto").read_bytes())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--pyi_out=.",
            "--grpc_python_out=.",
            "har/v1/har.proto",
        ],
        cwd=tmp_path,
        check=True,
    )
    for name in ("har_pb2.py", "har_pb2.pyi", "har_pb2_grpc.py"):
        fresh = (tmp_path / "har" / "v1" / name).read_text()
        assert (ROOT / "har" / "v1" / name).read_text() == fresh, f"{name} is stale: run make proto"
