"""What a training run writes besides the model: the held-out fixture, the reference
profile for drift, and the provenance that goes into the card.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.card import ModelCard
from har.domain.preprocessing import Preprocessor
from har.settings import PROJECT_ROOT
from har.training.data import DATASET_NAME, WindowSet
from har.training.evaluate import TUNING_SPLITS, predict_classes, scores
from har.training.fit import TrainConfig, available_cpus

#: Held-out windows written by a training run (``tests/fixtures/`` for the bundled model).
HELDOUT_FILE = "heldout_windows.npz"


def versions() -> dict[str, str]:
    """Python's and the training stack's installed versions (missing ones left out)."""
    out = {"python": platform.python_version()}
    for dist in ("har", "tensorflow-cpu", "keras", "numpy", "scikit-learn", "seglearn"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def write_reference(
    model: Any,
    card: ModelCard,
    windows: np.ndarray,
    path: Path,
    *,
    sequence_ids: np.ndarray | None = None,
) -> Path:
    """Write the drift reference profile of ``windows`` and the model's outputs on them.

    The one way the project builds a reference profile from a model (training and
    ``python -m har import-model --reference-data`` / ``reference`` both call it).

    Args:
        model: a Keras model the card describes.
        card: its card (the scaler is applied before the model, as in serving).
        windows: ``(N, window, 6)`` training windows, canonical units, unscaled.
        path: the profile file to write (whylogs binary).
        sequence_ids: ``(N,)`` recording of each window (consecutive in time), for the
            reference flip rate; ``None``: no flips.

    Returns:
        ``path``.
    """
    from har.monitoring import build_reference_profile, write_reference_profile
    from har.runtime.inference import CompiledModel

    probs = CompiledModel(model, xla=False, max_batch_size=256)(Preprocessor(card).scale(windows))
    view = build_reference_profile(
        windows, probs, classes=list(card.classes), sequence_ids=sequence_ids
    )
    write_reference_profile(view, path)
    return path


def save_heldout(path: Path, ws: WindowSet, classes: Sequence[str]) -> None:
    """Write held-out windows: ``windows`` ``(N, 200, 6)`` float32 canonical units
    (unscaled), ``labels`` ``(N,)`` int, ``subjects``, ``recording``, ``start_s``, ``classes``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        windows=ws.values.astype(np.float32),
        labels=ws.labels.astype(np.int64),
        subjects=ws.subjects.astype(np.int64),
        recording=ws.recording.astype(np.int64),
        start_s=ws.start_s.astype(np.float64),
        classes=np.asarray(classes),
    )


def heldout_metrics(
    model: Any, card: ModelCard, fixture: Path, subjects: Sequence[int]
) -> dict[str, Any]:
    """Scores of the model on the written held-out file (exactly what is committed)."""
    with np.load(fixture) as f:
        x, y = f["windows"], f["labels"]
    h = scores(y, predict_classes(model, card, x), len(card.classes))
    return {
        "subjects": list(subjects),
        "accuracy": h["accuracy"],
        "macro_f1": h["macro_f1"],
        "n_windows": h["n_windows"],
        "confusion": h["confusion"],
        "file": _relative(fixture),
        "sha256": sha256(fixture),
        "note": "never seen in training, scaling or tuning; all their windows",
    }


def provenance(
    config: TrainConfig,
    train: WindowSet,
    heldout: Sequence[int],
    *,
    seed: int,
    quick: bool,
    wall_time_s: float,
) -> dict[str, Any]:
    """The card's ``training`` section: data, preprocessing, configuration, versions."""
    return {
        "dataset": DATASET_NAME,
        "dataset_file": "seglearn/data/watch_dataset.npy (seglearn 1.2.5, BSD-3)",
        "preprocessing": "har.domain.preprocessing.Preprocessor(card).windows then .scale; "
        "acc g -> m/s2, gyro rad/s -> deg/s; scaler = per-channel mean/std of the "
        "training windows' samples",
        "train_subjects": sorted(int(s) for s in np.unique(train.subjects)),
        "heldout_subjects": list(heldout),
        "n_train_windows": len(train),
        "seed": seed,
        "quick": quick,
        "config": asdict(config),
        "optimizer": "Adam, cosine-decayed learning rate, sparse categorical "
        "cross-entropy, no early stopping",
        "augmentation": "training batches only: mirrored to the other arm with "
        f"probability {config.mirror_probability} (acc x, gyro y, gyro z negated), "
        "random rotation about a random axis "
        f"(|angle| <= {config.rotation_deg} deg, same for acc and gyro), magnitude "
        f"x U(1 +/- {config.magnitude_jitter})",
        "tuning": "hyper-parameters chosen by har.training.evaluate.validate_config on "
        f"splits {[list(s) for s in TUNING_SPLITS]} of the training subjects; "
        "results in models/README.md",
        "deterministic_ops": True,
        "versions": versions(),
        "command": "python -m har train-reference" + (" --quick" if quick else ""),
        "cpus": available_cpus(),
        "wall_time_s": round(wall_time_s, 1),
    }
