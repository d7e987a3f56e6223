"""The model card: everything that belongs to a model besides its weights.

The classes, window geometry, channel order, units and scaler travel with the
model in one JSON document (``card.json`` beside the weights, as in
``models/pretrained/``) and every consumer (training, offline scoring, HTTP,
gRPC, monitoring) takes them from here. :class:`Units` is the one type for the
units a client declares.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from har.domain.calibration import Calibration
from har.domain.errors import CardMismatchError, InputError, quoted

CANONICAL_CHANNELS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
#: Accepted unit names; the first of each is the canonical unit.
AccUnit = Literal["m/s2", "g", "milli_g"]
GyroUnit = Literal["deg/s", "rad/s"]
ACC_UNITS: tuple[str, ...] = get_args(AccUnit)
GYRO_UNITS: tuple[str, ...] = get_args(GyroUnit)
STANDARD_GRAVITY = 9.80665  # m/s² per g
#: Factor from each accepted unit to the canonical one (m/s², deg/s).
ACC_TO_MS2: dict[str, float] = dict(
    zip(ACC_UNITS, (1.0, STANDARD_GRAVITY, STANDARD_GRAVITY / 1000), strict=True)
)
GYRO_TO_DEG_S: dict[str, float] = dict(zip(GYRO_UNITS, (1.0, 180.0 / math.pi), strict=True))
_FIELD_NAMES = {"acc": ("accelerometer", ACC_UNITS), "gyro": ("gyroscope", GYRO_UNITS)}


# Built at each edge: the JSON body of ``POST /predict`` (BentoML validates it), the
# form fields ``acc_unit``/``gyro_unit``, the gRPC ``Units`` message and the command
# line, the last three through ``Units.parse``. Immutable. Its docstring is the
# description in the service's OpenAPI schema.
class Units(BaseModel):
    """Physical units of the accelerometer and gyroscope channels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    acc: AccUnit = "m/s2"
    gyro: GyroUnit = "deg/s"

    @classmethod
    def parse(cls, fields: Mapping[str, object]) -> Units:
        """Units from ``{"acc": name, "gyro": name}`` (either may be left out: canonical).

        Raises:
            InputError: an unknown unit name or key; the message lists the accepted ones.
        """
        try:
            return cls.model_validate(dict(fields))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else ""
            if key in _FIELD_NAMES:
                what, names = _FIELD_NAMES[key]
                message = f"unknown {what} unit {quoted(err['input'])}; use one of {list(names)}"
            else:  # quoted: never echo a huge or deeply nested value (har/domain/errors.py)
                unknown = sorted(str(k) for k in fields if k not in _FIELD_NAMES)
                extra = ", ".join(quoted(k) for k in unknown[:5]) + (", ..." * (len(unknown) > 5))
                message = f"unknown keys in units: [{extra}]; use 'acc' and 'gyro'"
            raise InputError(message) from None

    @property
    def is_canonical(self) -> bool:
        """True for m/s² and deg/s (no conversion needed)."""
        return self == CANONICAL_UNITS


#: The canonical units (m/s², deg/s): what the model's scaler expects.
CANONICAL_UNITS = Units()


class Scaler(BaseModel):
    """Per-channel z-score fitted on the training windows (canonical units)."""

    model_config = ConfigDict(extra="forbid")

    mean: list[float]
    scale: list[float]

    @field_validator("scale")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not np.isfinite(s) or s <= 0 for s in v):
            raise ValueError("every scale must be a positive finite number")
        return v

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, scale)`` as float32 arrays of shape ``(channels,)``."""
        return np.asarray(self.mean, np.float32), np.asarray(self.scale, np.float32)


class OnnxEvidence(BaseModel):
    """The ONNX export of a model and the parity check that decides whether it may serve.

    Written by ``import-model`` and ``register`` (har/runtime/onnx_export.py): the Keras
    model exported to ``model.onnx`` and both run on the same windows; ``passed`` when
    every window's probabilities differ by at most ``tolerance`` and its predicted class is
    the same. ``sha256`` names the exact file that was checked.
    """

    passed: bool
    reason: str = Field("", description="Why the export or the check failed (empty: passed).")
    tolerance: float = 1e-5
    max_abs_diff: float | None = None
    windows: int = 0
    same_class: int = 0
    data: list[str] = Field(default_factory=list, description="Where the windows came from.")
    sha256: str = ""
    opset: int | None = None
    exporter: str = ""
    onnxruntime: str = ""


class ModelCard(BaseModel):
    """A model's card. ``classes[i]`` names softmax output ``i``."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str = Field(min_length=1)
    classes: list[str] = Field(min_length=2)
    window: int = Field(gt=1, description="Samples per window.")
    hop: int = Field(gt=0, description="Samples between window starts.")
    sample_rate_hz: float = Field(gt=0)
    channels: list[str] = Field(default_factory=lambda: list(CANONICAL_CHANNELS))
    units: Units = Field(default_factory=Units)
    scaler: Scaler
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    onnx: OnnxEvidence | None = Field(
        None, description="The ONNX export's parity evidence (None: not exported)."
    )
    calibration: Calibration | None = Field(
        None, description="Temperature scaling and its evidence (None: not fitted)."
    )

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("class names must be unique")
        return v

    @field_validator("channels")
    @classmethod
    def _canonical_channels(cls, v: list[str]) -> list[str]:
        if list(v) != list(CANONICAL_CHANNELS):
            raise ValueError(f"channels must be {list(CANONICAL_CHANNELS)} in this order, got {v}")
        return v

    @model_validator(mode="after")
    def _scaler_fits_channels(self) -> ModelCard:
        n = len(self.channels)
        if len(self.scaler.mean) != n or len(self.scaler.scale) != n:
            raise ValueError(
                f"scaler: mean and scale need {n} values (one per channel), got "
                f"{len(self.scaler.mean)} and {len(self.scaler.scale)}"
            )
        return self

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def window_seconds(self) -> float:
        return self.window / self.sample_rate_hz

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse a card; an invalid card raises :class:`InputError` naming the field."""
        try:
            return cls.model_validate_json(text)
        except ValueError as exc:
            raise InputError(f"invalid model card: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> ModelCard:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"model card not found: {p}")
        return cls.from_json(p.read_bytes())

    def to_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")

    def check_model(self, input_shape: tuple[Any, ...], output_shape: tuple[Any, ...]) -> None:
        """Refuse a card that does not fit a model's input ``(None, window, channels)``
        and output ``(None, n_classes)``; the message names the card's field."""
        if len(input_shape) != 3:
            raise CardMismatchError(
                f"model input must be (batch, window, channels), got {tuple(input_shape)}"
            )
        _, window, channels = input_shape
        if window is not None and int(window) != self.window:
            raise CardMismatchError(
                f"card field 'window' is {self.window} but the model takes windows of {window}"
            )
        if channels is None or int(channels) != self.n_channels:
            raise CardMismatchError(
                f"card field 'channels' lists {self.n_channels} channels but the model takes "
                f"{channels}"
            )
        if len(output_shape) != 2 or output_shape[-1] is None:
            raise CardMismatchError(
                f"model output must be (batch, n_classes), got {tuple(output_shape)}"
            )
        if int(output_shape[-1]) != len(self.classes):
            raise CardMismatchError(
                f"card field 'classes' names {len(self.classes)} classes but the model outputs "
                f"{output_shape[-1]}"
            )
