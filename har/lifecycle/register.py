"""``python -m har register``: log a run with a model, its card and reference profile,
and register it as a new version of a registered model.

The run holds ``model/model.keras``, ``model/card.json`` and (when known)
``model/reference_profile.bin``; the card's numeric metrics become MLflow
metrics (``heldout.accuracy``, ``leave_subjects_out.mean.macro_f1``, ...); tags
say the classes, window, sample rate, data provenance and the sha256 of the
``.keras`` file, so the same file registered twice shows the same hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.card import ModelCard
from har.lifecycle import store
from har.runtime import model_store
from har.settings import Settings


@dataclass(frozen=True)
class Registered:
    """A new registry version: ``name/version``, its run, content hash and, when the same
    file was registered before, the earlier versions with that hash."""

    name: str
    version: str
    run_id: str
    sha256: str
    same_content_as: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def card_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a card's ``metrics`` as flat MLflow metric names.

    Example: ``{"heldout": {"accuracy": 0.93, "folds": [...]}}`` →
    ``{"heldout.accuracy": 0.93}`` (lists, such as folds and confusion counts, are left
    out: training logs them per step and as an image).
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(card_metrics(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
            out[name] = float(value)
    return out


def version_tags(card: ModelCard, sha256: str, source: Path) -> dict[str, str]:
    """Tags set on the run and on the registered version."""
    training = card.training or {}
    return {
        store.SHA_TAG: sha256,
        "har.classes": json.dumps(card.classes),
        "har.window": str(card.window),
        "har.hop": str(card.hop),
        "har.sample_rate_hz": f"{card.sample_rate_hz:g}",
        "har.card_name": card.name,
        "har.data_provenance": str(training.get("dataset") or "not stated in the card"),
        "har.source_file": source.name,
    }


def build_reference(model: Any, card: ModelCard, data: Path, dest: Path) -> Path:
    """Write the reference profile of ``data`` (``.npz`` with ``windows``, canonical units,
    or a canonical CSV recording) as scored by ``model``."""
    from har.domain.preprocessing import Preprocessor
    from har.domain.recordings import read_csv_recording
    from har.monitoring import build_reference_profile, write_reference_profile
    from har.runtime.inference import CompiledModel

    pre = Preprocessor(card)
    if data.suffix == ".npz":
        with np.load(data) as f:
            windows = pre.check_windows(f["windows"])
    else:
        rec = read_csv_recording(data)
        windows = pre.windows(rec.time, rec.values).values
    probs = CompiledModel(model, xla=False)(pre.scale(windows))
    write_reference_profile(build_reference_profile(windows, probs, classes=card.classes), dest)
    return dest


def register_model(
    model_path: Path,
    card_path: Path,
    settings: Settings,
    *,
    name: str | None = None,
    reference_data: Path | None = None,
    reference_profile: Path | None = None,
    run_name: str | None = None,
    log_extra: Callable[[Any, str, ModelCard], None] | None = None,
    parity_data: list[Path] | None = None,
    calibration_data: Path | None = None,
) -> Registered:
    """Validate the card against the model, log a run with both, register a version.

    Args:
        model_path: a Keras 3 ``.keras`` file.
        card_path: its card (JSON, har/domain/card.py).
        name: registered model name (default: the card's ``name``).
        reference_data: windows or a recording to build the reference profile from.
        reference_profile: a ready profile; default: the bundled model's
            ``models/pretrained/reference_profile.bin`` when ``model_path`` has the bundled
            model's content, otherwise none.
        log_extra: called as ``log_extra(client, run_id, card)`` before the run ends
            (training adds its parameters, per-fold metrics and images).
        parity_data: ``.npz`` windows the ONNX export is checked on beside the probe
            windows (default: the bundled held-out windows when they fit the card).
        calibration_data: labelled ``.npz`` windows the temperature is fitted and checked on
            (default: the bundled held-out windows when they fit; har/runtime/calibrate.py).

    Raises:
        InputError: unreadable model or card; CardMismatchError: card does not fit.
    """
    model_path, card_path = Path(model_path), Path(card_path)
    card = ModelCard.from_file(card_path)
    model = model_store.load_keras(model_path)
    model_store.validate(model, card)
    sha = sha256_of(model_path)
    name = name or card.name
    c = store.client(settings)
    with tempfile.TemporaryDirectory(prefix="har-register-") as tmp:
        folder = Path(tmp) / store.ARTIFACT_DIR
        folder.mkdir()
        shutil.copyfile(model_path, folder / model_store.MODEL_FILE)
        # the ONNX export and its parity evidence travel with the run (har/runtime/onnx_export.py)
        onnx_bytes, evidence = model_store.export_onnx_for(model, card, parity_data)
        card = card.model_copy(update={"onnx": evidence})
        card = model_store.with_calibration(model, card, calibration_data, model_sha256=sha)
        if onnx_bytes is not None:
            (folder / model_store.ONNX_FILE).write_bytes(onnx_bytes)
        card.to_file(folder / model_store.CARD_FILE)
        ref_dest = folder / model_store.REFERENCE_FILE
        if reference_data is not None:
            build_reference(model, card, Path(reference_data), ref_dest)
        elif reference_profile is not None:
            shutil.copyfile(reference_profile, ref_dest)
        elif model_store.BUNDLED_MODEL.is_file() and sha == sha256_of(model_store.BUNDLED_MODEL):
            shutil.copyfile(model_store.BUNDLED_REFERENCE, ref_dest)
        tags = version_tags(card, sha, model_path)
        run = c.create_run(
            store.experiment_id(c, settings), run_name=run_name or f"register {name}", tags=tags
        )
        run_id = run.info.run_id
        try:
            _log_card(c, run_id, card)
            c.log_artifacts(run_id, str(folder), store.ARTIFACT_DIR)
            if log_extra is not None:
                log_extra(c, run_id, card)
        except BaseException:
            c.set_terminated(run_id, "FAILED")
            raise
        c.set_terminated(run_id)
    earlier = _versions_with_hash(c, name, sha)
    if not _exists(c, name):
        c.create_registered_model(name, description=f"Keras HAR model ({card.name})")
    mv = c.create_model_version(
        name, f"{run.info.artifact_uri}/{store.ARTIFACT_DIR}", run_id=run_id, tags=tags
    )
    return Registered(name, str(mv.version), run_id, sha, earlier)


def _log_card(c: Any, run_id: str, card: ModelCard) -> None:
    from mlflow.entities import Metric

    metrics = card_metrics(card.metrics)
    if card.onnx is not None and card.onnx.max_abs_diff is not None:
        metrics["onnx.max_abs_diff"] = card.onnx.max_abs_diff
    if card.calibration is not None:
        cal = card.calibration
        for key in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after"):
            metrics[f"calibration.{key}"] = float(getattr(cal, key))
    stamp = int(time.time() * 1000)
    batch = [Metric(k, v, stamp, 0) for k, v in metrics.items()]
    for start in range(0, len(batch), 500):  # MLflow's batch limit is 1000 metrics
        c.log_batch(run_id, metrics=batch[start : start + 500])


def _exists(c: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException:
        return False
    return True


def _versions_with_hash(c: Any, name: str, sha: str) -> tuple[str, ...]:
    if not _exists(c, name):
        return ()
    found = c.search_model_versions(f"name = '{name}'")
    return tuple(
        sorted((str(v.version) for v in found if v.tags.get(store.SHA_TAG) == sha), key=int)
    )
