"""gRPC input bounds (har/grpc/service.py): undecodable bytes and stream time limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from har.grpc.service import (
    ActivityRecognitionServicer,
    StreamLimitError,
    Undecodable,
    safe_deserializer,
)
from har.v1 import har_pb2


@pytest.mark.parametrize("raw", [b"\xff\xff\xff\xff", b"\x07", b"\x0a\xff\xff\xff\xff\x0f"])
def test_bytes_that_are_not_a_message_decode_to_undecodable(raw):
    out = safe_deserializer(har_pb2.PredictRequest)(raw)
    assert isinstance(out, Undecodable)
    assert out.message == "the request is not a valid har.v1.PredictRequest message"


def test_a_valid_message_decodes():
    req = har_pb2.PredictRequest(windows=[har_pb2.Window(values=[1.0])])
    assert safe_deserializer(har_pb2.PredictRequest)(req.SerializeToString()) == req


class _Servicer(ActivityRecognitionServicer):
    def __init__(self, idle: float, duration: float) -> None:  # no scorer needed here
        self.idle_timeout_s, self.max_duration_s = idle, duration


async def _chunks(n: int, every: float) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(every)
        yield i


async def _drain(it: AsyncIterator[object]) -> list[object]:
    return [x async for x in it]


def test_stream_idle_and_duration_limits():
    ok = _Servicer(idle=1.0, duration=10.0)
    assert asyncio.run(_drain(ok._bounded(_chunks(3, 0.01)))) == [0, 1, 2]
    with pytest.raises(StreamLimitError, match=r"no chunk for 0.05 s"):
        asyncio.run(_drain(_Servicer(0.05, 10.0)._bounded(_chunks(3, 0.2))))
    with pytest.raises(StreamLimitError, match=r"open longer than 0.15 s"):
        asyncio.run(_drain(_Servicer(1.0, 0.15)._bounded(_chunks(10, 0.05))))
