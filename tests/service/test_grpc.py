"""The gRPC API over a real in-process ``grpc.aio`` server and channel.

The model is a deterministic fake (class probabilities computed from the scaled
input) behind a real :class:`har.scorer.Scorer`, on a small synthetic card, so
these tests need neither TensorFlow nor the trained model. pytest-asyncio is not
a dependency: each test runs its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from har.card import ModelCard
from har.grpc_service import SERVICE_NAME, start_grpc_server, stop_grpc_server
from har.preprocessing import Preprocessor
from har.scorer import THREAD_CHUNK_SAMPLES, Scorer
from har.timeline import TimelineOptions, timeline_of
from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.cards import make_card
from tests.helpers.paths import ROOT
from tests.helpers.signals import synthetic_recording

TAG = "test-har:fake"
CARD = make_card(["PEN", "ABD", "FEL", "IR"], window=40, scale=(3, 3, 3, 40, 40, 40))
GRAVITY = np.array([0.0, 0.0, 9.8, 0.0, 0.0, 0.0])  # on acc_z, m/s²
_W = np.random.default_rng(7).normal(size=(12, len(CARD.classes))).astype(np.float32)


def fake_probs(scaled: np.ndarray) -> np.ndarray:
    """``(N, window, 6)`` scaled windows -> ``(N, n_classes)`` softmax of a fixed map."""
    feats = np.concatenate([scaled.mean(axis=1), scaled.std(axis=1)], axis=1)
    logits = feats @ _W
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


async def fake_infer(scaled: np.ndarray) -> np.ndarray:
    return fake_probs(scaled)


class Recorder:
    """A monitor that keeps what it observed."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None]] = []

    def observe(
        self, windows: np.ndarray, probs: np.ndarray, *, sequence_key: str | None = None
    ) -> None:
        self.calls.append((len(windows), sequence_key))


Scenario = Callable[[grpc.aio.Channel], Awaitable[None]]


def serve(scenario: Scenario, scorer: Scorer | None = None) -> None:
    """Start the server on an ephemeral port, run ``scenario`` on a channel to it, stop."""

    async def main() -> None:
        handle = await start_grpc_server(
            scorer or Scorer(CARD, TAG, fake_infer), "127.0.0.1", 0, max_message_bytes=8 << 20
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                await scenario(channel)
        finally:
            await stop_grpc_server(handle, grace=0.5)

    asyncio.run(main())


def windows(n: int, seed: int = 0) -> np.ndarray:
    """``(n, window, 6)`` canonical windows (m/s², deg/s)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, [3, 3, 3, 50, 50, 50], (n, CARD.window, 6))
    return (w + GRAVITY).astype(np.float32)


def request(w: np.ndarray, **units: str) -> har_pb2.PredictRequest:
    msgs = [har_pb2.Window(values=x.ravel().tolist()) for x in w]
    if units:
        return har_pb2.PredictRequest(windows=msgs, units=har_pb2.Units(**units))
    return har_pb2.PredictRequest(windows=msgs)


def recording(rate_hz: float, seconds: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Unix-time stamps and ``(n, 6)`` canonical values, rounded to float32 as on the wire."""
    t0 = 1_700_000_000.0
    return synthetic_recording(rate_hz, seconds, t0=t0, seed=seed, gyro_gain=20, float32=True)


def chunks(
    t: np.ndarray, v: np.ndarray, seed: int | None, units: har_pb2.Units | None = None
) -> list[har_pb2.SensorChunk]:
    """Split into chunks of random sizes 1..97 (cutting windows anywhere), or one chunk
    if ``seed`` is None; units on chunk 0 only."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(t):
        k = len(t) if seed is None else int(rng.integers(1, 98))
        c = har_pb2.SensorChunk(timestamps=t[i : i + k].tolist(), values=v[i : i + k].ravel())
        if units is not None and not out:
            c.units.CopyFrom(units)
        out.append(c)
        i += k
    return out


async def expect_invalid(call: Awaitable[object], *fragments: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for f in fragments:
        assert f in info.value.details()


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


@pytest.mark.parametrize(
    ("rate_hz", "seconds", "seed"),
    [(50, 20, 1), (100, 20, 2), (50, 120, None)],
    ids=["50Hz-random-chunks", "100Hz-random-chunks", "50Hz-one-6000-sample-chunk"],
)
def test_stream_predict_matches_offline_windows(rate_hz: int, seconds: int, seed: int | None):
    t, v = recording(rate_hz, seconds)
    assert seed is not None or len(t) > THREAD_CHUNK_SAMPLES  # the worker-thread path
    offline = Preprocessor(CARD).windows(t, v)
    want = fake_probs(Preprocessor(CARD).scale(offline.values))
    # sent in g and rad/s, units on the first chunk only
    sent = v / np.array([9.80665] * 3 + [180 / math.pi] * 3)
    monitor = Recorder()

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        units = har_pb2.Units(acc="g", gyro="rad/s")
        got = [m async for m in stub.StreamPredict(iter(chunks(t, sent, seed, units)))]
        assert [m.index for m in got] == list(range(len(offline)))
        assert not any(m.HasField("summary") for m in got)  # only when asked for
        assert {m.model for m in got} == {TAG}
        np.testing.assert_allclose([m.start for m in got], offline.start_s, atol=1e-9)
        np.testing.assert_allclose([m.end for m in got], offline.end_s, atol=1e-9)
        probs = np.array([m.prediction.probabilities for m in got])
        if rate_hz == 50:  # same grid, same samples (test_streaming: exact at <= model rate)
            np.testing.assert_allclose(probs, want, atol=1e-4)
            assert [m.prediction.activity_id for m in got] == want.argmax(axis=1).tolist()

    serve(scenario, Scorer(CARD, TAG, fake_infer, monitor=monitor))
    assert sum(n for n, _ in monitor.calls) == len(offline)
    keys = {k for _, k in monitor.calls}
    assert len(keys) == 1 and next(iter(keys)).startswith("grpc-")


def _with_gap(rate_hz: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """40 s, a 5 s gap, 20 s: two gap-free stretches."""
    t, v = recording(rate_hz, 60)
    keep = (t - t[0] < 40) | (t - t[0] >= 45)
    return t[keep], v[keep]


@pytest.mark.parametrize("smoothing", ["none", "viterbi"])
def test_stream_summary_is_the_offline_timeline_when_asked_for(smoothing: str) -> None:
    t, v = _with_gap()
    offline = Preprocessor(CARD).windows(t, v)
    probs = fake_probs(Preprocessor(CARD).scale(offline.values))
    want = timeline_of(offline, probs, CARD.classes, smoothing=smoothing)
    raw = timeline_of(offline, probs, CARD.classes, smoothing="none")
    msgs = chunks(t, v, seed=3)
    msgs[0].summary = True  # asked for on the first chunk, smoothing on a later one
    msgs[2].smoothing = smoothing

    async def scenario(channel: grpc.aio.Channel) -> None:
        got = await _collect(
            har_pb2_grpc.ActivityRecognitionStub(channel).StreamPredict(iter(msgs))
        )
        *windows_, last = got
        assert [m.index for m in windows_] == list(range(len(offline)))
        assert not any(m.HasField("summary") for m in windows_)
        assert last.HasField("summary") and not last.HasField("prediction")
        s = last.summary
        assert (s.smoothing, s.windows, last.model) == (smoothing, len(offline), TAG)
        segs = [(x.start, x.end, x.activity, x.activity_id, x.windows) for x in s.segments]
        assert segs == [
            (pytest.approx(x.start), pytest.approx(x.end), x.activity, x.activity_id, x.windows)
            for x in want.segments
        ]
        assert [x.confidence for x in s.segments] == pytest.approx(
            [x.confidence for x in want.segments], abs=1e-5
        )
        # tiles time, never across the gap: no segment holds time from 40 to 45 s
        assert all(a.end <= b.start for a, b in zip(s.segments[:-1], s.segments[1:], strict=True))
        assert not any(x.start < 40.0 < x.end or x.start < 44.9 < x.end for x in s.segments)
        assert {a.activity: a.seconds for a in s.totals} == pytest.approx(want.summary, abs=1e-3)
        assert len(s.segments) <= len(raw.segments)

    serve(scenario)


def test_stream_summary_defaults_to_the_scorers_smoothing_and_refuses_unknown() -> None:
    t, v = _with_gap()
    msgs = chunks(t, v, seed=None)
    msgs[0].summary = True

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        assert (await _collect(stub.StreamPredict(iter(msgs))))[-1].summary.smoothing == "none"
        bad = [har_pb2.SensorChunk(summary=True, smoothing="median")]
        await expect_invalid(_collect(stub.StreamPredict(iter(bad))), "'viterbi', 'none'")

    serve(scenario, Scorer(CARD, TAG, fake_infer, timeline=TimelineOptions(smoothing="none")))


def _chunk(t0: float, n: int, **kw: object) -> har_pb2.SensorChunk:
    t = t0 + np.arange(n) / 50
    return har_pb2.SensorChunk(timestamps=t.tolist(), values=[1.0] * (6 * n), **kw)


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        (
            har_pb2.SensorChunk(timestamps=[10.0, 10.02], values=[0.0] * 11),
            ["chunk 2", "11 values for 2 timestamps"],
        ),
        (
            har_pb2.SensorChunk(timestamps=[10.0, 10.02], values=[0.0] * 7 + [math.inf] + [0] * 4),
            ["chunk 2", "sample 1 has NaN or infinity in channel acc_y"],
        ),
        (
            _chunk(1.0, 5),
            ["chunk 2: timestamps must increase: sample 0 of this chunk is at 1.0 s, not after "],
        ),
        (
            _chunk(10.0, 5, units=har_pb2.Units(acc="g")),
            ["chunk 2", "units can only be set on a stream's first chunk"],
        ),
    ],
    ids=["values-count", "inf", "time-goes-back", "units-change"],
)
def test_stream_predict_bad_chunk_is_invalid_argument(bad, fragments: list[str]) -> None:
    # 3 s of good samples complete a few windows before the bad chunk arrives. The bad
    # chunk is the last one: see test_stream_error_reaches_a_client_still_sending.
    good = [_chunk(0.0, 75), _chunk(1.5, 75), bad]

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        call = stub.StreamPredict(iter(good))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for m in call:
                received.append(m)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for f in fragments:
            assert f in info.value.details()
        assert [m.index for m in received] == list(range(len(received))) and received
        # unknown units on the first chunk, then the server still answers
        await expect_invalid(
            _collect(stub.StreamPredict(iter([_chunk(0.0, 3, units=har_pb2.Units(gyro="rpm"))]))),
            "gyroscope unit 'rpm'",
        )
        assert (await stub.GetModel(har_pb2.GetModelRequest())).tag == TAG

    serve(scenario)


def test_stream_error_reaches_a_client_still_sending() -> None:
    """A bad chunk early in a long stream: the client gets INVALID_ARGUMENT while it is
    still writing. Checked with the synchronous client: grpcio's asyncio client replaces
    the server's status by INTERNAL "Internal error from Core" when one of its writes
    fails because the server already ended the call (grpc/grpc#36066, fix pending in
    grpc/grpc#43486); the server sends the right status either way."""
    t, v = recording(50, 240)
    msgs = [
        har_pb2.SensorChunk(timestamps=t[i : i + 1], values=v[i : i + 1].ravel())
        for i in range(len(t))
    ]
    msgs[300] = har_pb2.SensorChunk(timestamps=[t[0]], values=[0.0] * 6)

    async def main() -> None:
        handle = await start_grpc_server(
            Scorer(CARD, TAG, fake_infer), "127.0.0.1", 0, max_message_bytes=1 << 20
        )

        def client() -> tuple[int, grpc.RpcError]:
            received = 0
            with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                stub = har_pb2_grpc.ActivityRecognitionStub(channel)
                try:
                    for _ in stub.StreamPredict(iter(msgs), timeout=30):
                        received += 1
                except grpc.RpcError as exc:
                    return received, exc
            raise AssertionError("the stream ended without an error")

        try:
            received, exc = await asyncio.to_thread(client)
        finally:
            await stop_grpc_server(handle, grace=0.5)
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "chunk 300: timestamps must increase" in exc.details()
        # every window completed before the bad chunk arrived
        assert received == len(Preprocessor(CARD).windows(t[:300], v[:300])) >= 10

    asyncio.run(main())


async def _collect(call) -> list:
    return [m async for m in call]


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
