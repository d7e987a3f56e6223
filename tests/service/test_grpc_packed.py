"""gRPC Predict with windows as packed little-endian float32 bytes (``Window.packed``),
over a real in-process grpc.aio server and channel (the fake model of tests/test_grpc.py)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.grpc_fake import expect_invalid, request, serve, windows


def packed(w: np.ndarray) -> har_pb2.PredictRequest:
    return har_pb2.PredictRequest(
        windows=[har_pb2.Window(packed=x.astype("<f4").tobytes()) for x in w]
    )


def test_packed_windows_answer_as_repeated_values() -> None:
    w = windows(5)

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        a = await stub.Predict(request(w))
        b = await stub.Predict(packed(w))
        mixed = packed(w)
        mixed.windows[2].CopyFrom(request(w[2:3]).windows[0])  # one window the old way
        c = await stub.Predict(mixed)
        for resp in (b, c):
            assert [p.activity for p in resp.predictions] == [p.activity for p in a.predictions]
            np.testing.assert_array_equal(
                [p.probabilities for p in resp.predictions],
                [p.probabilities for p in a.predictions],
            )

    serve(scenario)


@pytest.mark.parametrize(
    ("mangle", "fragments"),
    [
        (lambda r: setattr(r.windows[1], "packed", r.windows[1].packed[:-4]), ["window 1 has"]),
        (lambda r: setattr(r.windows[0], "packed", b"\0\0\0"), ["3 packed bytes", "needs 240"]),
        (lambda r: r.windows[2].values.append(1.0), ["window 2 sets both"]),
        (
            lambda r: setattr(r.windows[0], "packed", np.full(240, np.inf, "<f4").tobytes()),
            ["NaN or infinity", "window 0"],
        ),
    ],
    ids=["short", "not-float32", "both", "inf"],
)
def test_packed_mistakes_are_invalid_argument(mangle, fragments) -> None:
    bad = packed(windows(3))
    mangle(bad)

    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        await expect_invalid(stub.Predict(bad), *fragments)

    serve(scenario)
