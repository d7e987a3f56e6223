from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Units(_message.Message):
    __slots__ = ("acc", "gyro")
    ACC_FIELD_NUMBER: _ClassVar[int]
    GYRO_FIELD_NUMBER: _ClassVar[int]
    acc: str
    gyro: str
    def __init__(self, acc: _Optional[str] = ..., gyro: _Optional[str] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("windows", "units")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[Window]
    units: Units
    def __init__(self, windows: _Optional[_Iterable[_Union[Window, _Mapping]]] = ..., units: _Optional[_Union[Units, _Mapping]] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("model", "predictions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    def __init__(self, model: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("activity", "activity_id", "confidence", "probabilities")
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    activity: str
    activity_id: int
    confidence: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, activity: _Optional[str] = ..., activity_id: _Optional[int] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class SensorChunk(_message.Message):
    __slots__ = ("timestamps", "values", "units", "summary", "smoothing")
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    timestamps: _containers.RepeatedScalarFieldContainer[float]
    values: _containers.RepeatedScalarFieldContainer[float]
    units: Units
    summary: bool
    smoothing: str
    def __init__(self, timestamps: _Optional[_Iterable[float]] = ..., values: _Optional[_Iterable[float]] = ..., units: _Optional[_Union[Units, _Mapping]] = ..., summary: _Optional[bool] = ..., smoothing: _Optional[str] = ...) -> None: ...

class WindowPrediction(_message.Message):
    __slots__ = ("index", "start", "end", "prediction", "model", "summary")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    index: int
    start: float
    end: float
    prediction: Prediction
    model: str
    summary: StreamSummary
    def __init__(self, index: _Optional[int] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., prediction: _Optional[_Union[Prediction, _Mapping]] = ..., model: _Optional[str] = ..., summary: _Optional[_Union[StreamSummary, _Mapping]] = ...) -> None: ...

class StreamSummary(_message.Message):
    __slots__ = ("smoothing", "segments", "totals", "windows")
    SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    smoothing: str
    segments: _containers.RepeatedCompositeFieldContainer[TimelineSegment]
    totals: _containers.RepeatedCompositeFieldContainer[ActivityTime]
    windows: int
    def __init__(self, smoothing: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[TimelineSegment, _Mapping]]] = ..., totals: _Optional[_Iterable[_Union[ActivityTime, _Mapping]]] = ..., windows: _Optional[int] = ...) -> None: ...

class TimelineSegment(_message.Message):
    __slots__ = ("start", "end", "activity", "activity_id", "confidence", "windows")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    activity: str
    activity_id: int
    confidence: float
    windows: int
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., activity: _Optional[str] = ..., activity_id: _Optional[int] = ..., confidence: _Optional[float] = ..., windows: _Optional[int] = ...) -> None: ...

class ActivityTime(_message.Message):
    __slots__ = ("activity", "seconds")
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    activity: str
    seconds: float
    def __init__(self, activity: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("tag", "classes", "window", "hop", "sample_rate_hz", "channels", "card_json")
    TAG_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    HOP_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    tag: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    window: int
    hop: int
    sample_rate_hz: float
    channels: _containers.RepeatedScalarFieldContainer[str]
    card_json: str
    def __init__(self, tag: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., window: _Optional[int] = ..., hop: _Optional[int] = ..., sample_rate_hz: _Optional[float] = ..., channels: _Optional[_Iterable[str]] = ..., card_json: _Optional[str] = ...) -> None: ...
