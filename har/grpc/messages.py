"""Between protobuf and the core: request messages decoded (never raising), units read,
the core's typed results (:mod:`har.domain.results`) and timelines written as messages, and the
servicer registered with those safe deserializers. Used by :mod:`har.grpc.service`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from har.domain.card import Units
from har.domain.errors import InputError
from har.domain.results import Predictions
from har.domain.timeline import Timeline
from har.v1 import har_pb2, har_pb2_grpc

#: Fully qualified name of the service (health status and reflection use it).
SERVICE_NAME: str = har_pb2.DESCRIPTOR.services_by_name["ActivityRecognition"].full_name


def units_from_proto(units: har_pb2.Units) -> Units:
    """A ``Units`` message as :class:`~har.domain.card.Units`; empty fields mean the canonical unit.

    Raises:
        InputError: an unknown unit name.
    """
    return Units.parse({k: v for k, v in (("acc", units.acc), ("gyro", units.gyro)) if v})


def prediction_messages(preds: Predictions) -> list[har_pb2.Prediction]:
    """One ``Prediction`` message per window (probabilities in card class order)."""
    classes = preds.classes
    return [
        har_pb2.Prediction(activity=classes[i], activity_id=i, confidence=c, probabilities=row)
        for i, c, row in zip(
            preds.class_ids.tolist(), preds.confidence.tolist(), preds.probs.tolist(), strict=True
        )
    ]


def summary_message(timeline: Timeline, windows: int) -> har_pb2.StreamSummary:
    """The ``StreamSummary`` of a stream's timeline (``windows``: how many it had)."""
    return har_pb2.StreamSummary(
        smoothing=timeline.smoothing,
        segments=[
            har_pb2.TimelineSegment(
                start=s.start,
                end=s.end,
                activity=s.activity,
                activity_id=s.activity_id,
                confidence=s.confidence,
                windows=s.windows,
            )
            for s in timeline.segments
        ],
        totals=[har_pb2.ActivityTime(activity=a, seconds=t) for a, t in timeline.summary.items()],
        windows=windows,
    )


class Undecodable:
    """What a request deserializer returns for bytes that are not the method's message
    (the servicer answers ``INVALID_ARGUMENT``; grpc would answer UNKNOWN or INTERNAL)."""

    def __init__(self, message: str) -> None:
        self.message = message


def safe_deserializer(cls: Any) -> Callable[[bytes], object]:
    """``cls.FromString``, returning an :class:`Undecodable` instead of raising."""
    name = cls.__name__

    def deserialize(data: bytes) -> object:
        try:
            return cls.FromString(data)
        except Exception:  # DecodeError and its relatives: never the server's fault
            return Undecodable(f"the request is not a valid har.v1.{name} message")

    return deserialize


def _check(request: object) -> None:
    if isinstance(request, Undecodable):
        raise InputError(request.message)


def add_servicer(
    servicer: har_pb2_grpc.ActivityRecognitionServicer, server: grpc.aio.Server
) -> None:
    """``har_pb2_grpc.add_ActivityRecognitionServicer_to_server`` with deserializers that
    never raise (:func:`safe_deserializer`)."""
    handlers = {
        "Predict": grpc.unary_unary_rpc_method_handler(
            servicer.Predict,
            request_deserializer=safe_deserializer(har_pb2.PredictRequest),
            response_serializer=har_pb2.PredictResponse.SerializeToString,
        ),
        "StreamPredict": grpc.stream_stream_rpc_method_handler(
            servicer.StreamPredict,
            request_deserializer=safe_deserializer(har_pb2.SensorChunk),
            response_serializer=har_pb2.WindowPrediction.SerializeToString,
        ),
        "GetModel": grpc.unary_unary_rpc_method_handler(
            servicer.GetModel,
            request_deserializer=safe_deserializer(har_pb2.GetModelRequest),
            response_serializer=har_pb2.ModelInfo.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
