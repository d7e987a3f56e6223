"""gRPC StreamPredict over a real in-process ``grpc.aio`` server and channel, with a
fake model (tests/helpers/grpc_fake.py): windows as offline, the summary timeline,
bad chunks and errors while the client is still sending.
"""

from __future__ import annotations

import asyncio
import math

import grpc
import numpy as np
import pytest

from har.core.scorer import THREAD_CHUNK_SAMPLES, Scorer
from har.domain.preprocessing import Preprocessor
from har.domain.timeline import TimelineOptions, timeline_of
from har.grpc.service import start_grpc_server, stop_grpc_server
from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.grpc_fake import (
    CARD,
    TAG,
    Recorder,
    chunks,
    collect,
    expect_invalid,
    fake_infer,
    fake_probs,
    recording,
    serve,
)


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
        got = await collect(har_pb2_grpc.ActivityRecognitionStub(channel).StreamPredict(iter(msgs)))
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
        assert (await collect(stub.StreamPredict(iter(msgs))))[-1].summary.smoothing == "none"
        bad = [har_pb2.SensorChunk(summary=True, smoothing="median")]
        await expect_invalid(collect(stub.StreamPredict(iter(bad))), "'viterbi', 'none'")

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
            collect(stub.StreamPredict(iter([_chunk(0.0, 3, units=har_pb2.Units(gyro="rpm"))]))),
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
