"""BentoML's model store: Keras models stored with their cards, found, loaded and labelled.

A stored model is a folder holding ``model.keras``, ``card.json``, ``model.onnx`` when
the model exported to ONNX (the card holds the parity evidence) and, when
known, ``reference_profile.bin`` (the whylogs profile of the training windows,
used for drift). Loading validates the card against the model. The bundled model
(``models/pretrained/``, written by ``python -m har train-reference``) keeps the
same card and reference names beside ``har-cnn-bilstm.keras``.

This module is the one home of these file names, and the one module outside
:mod:`har.serving` that imports BentoML (the import contract in pyproject.toml says so).
The MLflow registry is :mod:`har.lifecycle`'s.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.calibration import Calibration
from har.domain.card import ModelCard, OnnxEvidence
from har.domain.errors import CardMismatchError, InputError
from har.runtime.inference import CompiledModel
from har.runtime.onnx_model import ONNX_FILE, file_sha256
from har.settings import DEFAULT_MODEL_NAME, PRETRAINED_DIR, PROJECT_ROOT

__all__ = ["ONNX_FILE"]

#: The Keras model inside a stored model's folder.
MODEL_FILE = "model.keras"
#: The model card, in a stored model's folder and beside a trained model.
CARD_FILE = "card.json"
#: The whylogs reference profile, in a stored model's folder and beside a trained model.
REFERENCE_FILE = "reference_profile.bin"
#: The Keras model a training run writes (the bundled model's file in ``models/pretrained``).
BUNDLED_MODEL_FILE = f"{DEFAULT_MODEL_NAME}.keras"
BUNDLED_MODEL = PRETRAINED_DIR / BUNDLED_MODEL_FILE
BUNDLED_CARD = PRETRAINED_DIR / CARD_FILE
BUNDLED_REFERENCE = PRETRAINED_DIR / REFERENCE_FILE
#: The bundled model's held-out windows (canonical units): the ONNX parity check's default
#: data beside the probe windows, used when their shape fits the imported model's card.
BUNDLED_HELDOUT = PROJECT_ROOT / "tests" / "fixtures" / "heldout_windows.npz"


def load_keras(path: str | Path) -> Any:
    """Load a ``.keras`` file for inference (no optimizer state)."""
    import keras

    p = Path(path)
    if not p.is_file():
        raise InputError(f"model file not found: {p}")
    try:
        return keras.saving.load_model(p, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise InputError(f"cannot load {p} as a Keras model: {exc}") from None


def validate(model: Any, card: ModelCard, *, probe: bool = True) -> None:
    """Check that ``card`` describes ``model`` (input window/channels, classes, softmax).

    ``probe=False``: the shapes only; the caller runs :func:`check_probabilities` on its
    own compiled model (the model worker, so that start-up traces the model once).

    Raises:
        CardMismatchError: naming the card field that does not fit.
    """
    card.check_model(tuple(model.input_shape), tuple(model.output_shape))
    if probe:
        # a traced function: ~0.3 s, where an eager call of the LSTMs takes ~2.4 s at start-up
        check_probabilities(CompiledModel(model, xla=False), card)


def check_probabilities(run: Callable[[np.ndarray], np.ndarray], card: ModelCard) -> None:
    """Check that ``run`` (the model as a function) answers a softmax over the classes."""
    probe = np.random.default_rng(0).normal(size=(2, card.window, card.n_channels))
    out = np.asarray(run(probe.astype(np.float32)))
    if (out < -1e-6).any() or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise CardMismatchError(
            "the model's output is not a probability distribution: its last layer must be a "
            "softmax over the card's 'classes'"
        )


@contextlib.contextmanager
def _naming(tag: str) -> Iterator[None]:
    """Prefix a :class:`CardMismatchError` raised inside with the stored model's tag."""
    try:
        yield
    except CardMismatchError as exc:
        raise CardMismatchError(f"stored model {tag}: {exc}") from None


@dataclass
class LoadedModel:
    """A model from the store: its tag, card, Keras model and folder."""

    tag: str
    card: ModelCard
    model: Any
    path: Path

    def check_probabilities(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        """:func:`check_probabilities` of ``run`` (this model, compiled by the caller)."""
        with _naming(self.tag):
            check_probabilities(run, self.card)

    @property
    def reference_path(self) -> Path | None:
        p = self.path / REFERENCE_FILE
        return p if p.is_file() else None


def import_model(
    model_path: str | Path,
    card_path: str | Path,
    *,
    name: str | None = None,
    reference_profile: str | Path | None = None,
    labels: dict[str, str] | None = None,
    onnx_path: str | Path | None = None,
    parity_data: list[Path] | None = None,
    calibration_data: Path | None = None,
) -> str:
    """Store a Keras model with its card in the BentoML model store; return the new tag.

    The model is exported to ONNX and checked against Keras (har/runtime/onnx_export.py)
    on the probe windows and ``parity_data`` (default: the bundled held-out windows, when
    they fit); the card stored beside it carries the evidence. ``onnx_path``: an export
    whose sha256 the card's passing evidence names (a registry version's), copied instead
    of exporting again. A temperature is fitted on ``calibration_data`` (default: the bundled
    held-out windows when they fit the card; har/runtime/calibrate.py) and stored in the card
    with its evidence.

    Raises:
        InputError: unreadable model or card; CardMismatchError: card does not fit the model.
    """
    import bentoml

    card = ModelCard.from_file(card_path)
    model = load_keras(model_path)
    validate(model, card)
    onnx_bytes: bytes | None = None
    ev = card.onnx
    given = Path(onnx_path) if onnx_path is not None else None
    if given and given.is_file() and ev and ev.passed and file_sha256(given) == ev.sha256:
        onnx_bytes = given.read_bytes()  # the export this card's evidence was checked on
    if onnx_bytes is None:
        key: tuple[str, ...] = (file_sha256(Path(model_path)), card.model_dump_json())
        key += tuple(str(p) for p in parity_data or ())
        if key not in _EXPORTED:  # the same file and card imported again in this process
            _EXPORTED[key] = export_onnx_for(model, card, parity_data)
        onnx_bytes, evidence = _EXPORTED[key]
        card = card.model_copy(update={"onnx": evidence})
    card = with_calibration(
        model, card, calibration_data, model_sha256=file_sha256(Path(model_path))
    )
    name = name or card.name
    meta = {
        "classes": card.classes,
        "window": card.window,
        "hop": card.hop,
        "sample_rate_hz": card.sample_rate_hz,
        "onnx": bool(card.onnx and card.onnx.passed),
    }
    with bentoml.models.create(
        name, module="har.runtime.model_store", labels=labels or {}, metadata=meta
    ) as ref:
        shutil.copyfile(model_path, Path(ref.path) / MODEL_FILE)
        card.to_file(Path(ref.path) / CARD_FILE)
        if onnx_bytes is not None:
            (Path(ref.path) / ONNX_FILE).write_bytes(onnx_bytes)
        if reference_profile is not None:
            shutil.copyfile(reference_profile, Path(ref.path) / REFERENCE_FILE)
    return str(ref.tag)


#: Exports made by :func:`import_model` in this process, by model file hash, card and data.
_EXPORTED: dict[tuple[str, ...], tuple[bytes | None, OnnxEvidence]] = {}


def export_onnx_for(
    model: Any, card: ModelCard, parity_data: list[Path] | None = None
) -> tuple[bytes | None, OnnxEvidence]:
    """``(onnx bytes or None, evidence)`` of exporting ``model`` to ONNX: the probe windows and
    ``parity_data`` (default: :data:`BUNDLED_HELDOUT` when it exists) checked."""
    from har.runtime.onnx_export import export_with_evidence

    if parity_data is None:
        parity_data = [BUNDLED_HELDOUT] if BUNDLED_HELDOUT.is_file() else []
    return export_with_evidence(model, card, parity_data)


def with_calibration(
    model: Any, card: ModelCard, data: Path | None = None, *, model_sha256: str | None = None
) -> ModelCard:
    """``card`` with the calibration of ``model`` fitted on ``data`` (default: the bundled
    held-out windows when they fit). Without ``data``, a calibration the card already carries
    (a registry version's, fitted at ``register``) is kept as it is. ``model_sha256``: the
    model file's hash; the same file, classes, scaler and data are fitted once per process."""
    from har.runtime.calibrate import calibration_for

    if data is None and card.calibration is not None:
        return card
    key = None
    if model_sha256 is not None:
        key = (model_sha256, json.dumps(card.classes), card.scaler.model_dump_json(), str(data))
    if key is not None and key in _CALIBRATED:
        fitted = _CALIBRATED[key]
    else:
        fitted = calibration_for(model, card, data, heldout=BUNDLED_HELDOUT)
        if key is not None:
            _CALIBRATED[key] = fitted
    return card.model_copy(update={"calibration": fitted}) if fitted is not None else card


#: Calibrations fitted by :func:`with_calibration` in this process (tests import and register
#: the same files many times).
_CALIBRATED: dict[tuple[str, ...], Calibration | None] = {}


def import_model_once(
    model_path: str | Path,
    card_path: str | Path,
    *,
    name: str,
    reference_profile: str | Path | None = None,
    labels: dict[str, str] | None = None,
    onnx_path: str | Path | None = None,
) -> str:
    """:func:`import_model` as the tag ``name`` (``NAME:VERSION``); when another process (a
    second worker starting) stored that tag meanwhile, the stored model's tag."""
    import bentoml

    try:
        return import_model(
            model_path,
            card_path,
            name=name,
            reference_profile=reference_profile,
            labels=labels,
            onnx_path=onnx_path,
        )
    except bentoml.exceptions.BentoMLException:
        return str(bentoml.models.get(name).tag)


def stored_labels(tag: str) -> dict[str, str]:
    """Labels of a model in the store."""
    import bentoml

    return dict(bentoml.models.get(tag).info.labels)


def relabel(tag: str, labels: dict[str, str]) -> bool:
    """Set ``labels`` (others kept) on the stored model ``tag``; ``False`` if it is not stored.

    BentoML 1.4 has no call to change a stored model's labels; they live in its
    ``model.yaml``, which is rewritten with only ``labels`` changed (not at all when they
    already have these values).
    """
    import bentoml
    import yaml

    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        return False
    if {k: model.info.labels.get(k) for k in labels} == labels:
        return True
    path = Path(model.path) / "model.yaml"
    info = yaml.safe_load(path.read_text())
    info["labels"] = {**(info.get("labels") or {}), **labels}
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(info, sort_keys=False))
    tmp.replace(path)
    return True


def set_reference_profile(tag: str, profile_path: str | Path) -> Path:
    """Attach (or replace) the reference profile of a stored model."""
    folder = model_folder(tag)
    dest = folder / REFERENCE_FILE
    shutil.copyfile(profile_path, dest)
    return dest


def stored_model(tag: str) -> tuple[str, Path]:
    """``(resolved tag, folder)`` of a stored model; ``InputError`` if it is not stored."""
    import bentoml

    try:
        ref = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise InputError(
            f"model {tag!r} is not in the BentoML model store; import it with "
            "`python -m har import-model MODEL.keras --card CARD.json`"
        ) from None
    return str(ref.tag), Path(ref.path)


def model_folder(tag: str) -> Path:
    """Folder of a stored model; ``InputError`` if the tag is not in the store."""
    return stored_model(tag)[1]


def load_card(tag: str) -> tuple[str, Path, ModelCard]:
    """``(resolved tag, folder, card)`` of a stored model, without loading the model."""
    resolved, folder = stored_model(tag)
    return resolved, folder, ModelCard.from_file(folder / CARD_FILE)


def load_model(tag: str, *, probe: bool = True) -> LoadedModel:
    """Load a stored model and its card, validating one against the other.

    ``probe=False``: shapes only; then :meth:`LoadedModel.check_probabilities` on the
    caller's own compiled model.
    """
    resolved, folder = stored_model(tag)
    card = ModelCard.from_file(folder / CARD_FILE)
    model = load_keras(folder / MODEL_FILE)
    with _naming(resolved):
        validate(model, card, probe=probe)
    return LoadedModel(resolved, card, model, folder)


def ensure_bundled_model() -> str:
    """Import the bundled reference model unless a model of its name is already stored
    (stored before ONNX export or calibration existed: imported again, so that it can serve on
    ONNX Runtime and carries its calibration evidence)."""
    import bentoml

    try:
        tag = str(bentoml.models.get(f"{DEFAULT_MODEL_NAME}:latest").tag)
        card = load_card(tag)[2]
        # stored before calibration existed: imported again too, to carry its evidence
        fresh = card.onnx is not None and (
            card.calibration is not None or not BUNDLED_HELDOUT.is_file()
        )
        if fresh or not BUNDLED_MODEL.is_file():
            return tag
    except bentoml.exceptions.NotFound:
        pass
    ref = BUNDLED_REFERENCE if BUNDLED_REFERENCE.is_file() else None
    return import_model(
        BUNDLED_MODEL, BUNDLED_CARD, reference_profile=ref, labels={"source": "bundled"}
    )
