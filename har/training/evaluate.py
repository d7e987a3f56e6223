"""Evaluating on subjects a model never saw: folds, scores, leave-subjects-out, tuning.

Evaluation is leave-subjects-out: each fold tests, on all windows of 2 subjects,
a model, scaler and training that never saw them. Tuning (:func:`validate_config`)
uses splits of the training subjects only; its results are in models/README.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor
from har.training.data import HELDOUT_SUBJECTS, WindowSet, load_watch_dataset, windows_of
from har.training.fit import TrainConfig, base_card, deterministic_tensorflow, train_model

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

#: Published accuracy on unseen subjects for this data set (CRNN, Burns et al. 2018).
PUBLISHED_UNSEEN_SUBJECT_ACCURACY = 0.889
PUBLISHED_REFERENCE = (
    "Burns, Leung, Hardisty, Whyne, Henry, McLachlin (2018), Shoulder physiotherapy exercise "
    "recognition: machine learning the inertial signals from a smartwatch, Physiol. Meas. 39(7)"
)
#: Validation splits used to choose :class:`TrainConfig` (see :func:`validate_config`):
#: validation subjects drawn from the training subjects, never the held-out ones.
TUNING_SPLITS: tuple[tuple[int, int], ...] = ((2, 7), (5, 10))


def predict_classes(model: keras.Model, card: ModelCard, windows: np.ndarray) -> np.ndarray:
    """Predicted class indices ``(N,)`` for canonical windows ``(N, window, 6)``."""
    x = Preprocessor(card).scale(windows)
    probs = model.predict(x, batch_size=256, verbose=0)
    predicted: np.ndarray = np.asarray(probs).argmax(axis=1)
    return predicted


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, macro-F1 and the confusion matrix (rows true, columns predicted)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(n_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro")),
        "n_windows": int(len(y_true)),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def subject_folds(
    subjects: Sequence[int], heldout: Sequence[int] = HELDOUT_SUBJECTS
) -> list[tuple[int, ...]]:
    """Leave-two-subjects-out folds: ``heldout`` is one fold, the others pair up in order.

    Example: subjects 1..10 with heldout (3, 8) → (1, 2), (3, 8), (4, 5), (6, 7), (9, 10).
    """
    rest = [s for s in sorted(subjects) if s not in heldout]
    folds = [tuple(rest[i : i + 2]) for i in range(0, len(rest), 2)]
    folds.append(tuple(sorted(heldout)))
    return sorted(folds)


@dataclass(frozen=True)
class Evaluation:
    """The result of :func:`leave_subjects_out`.

    Attributes:
        summary: per-fold and pooled scores, the pooled confusion matrix and the
            published bar (what the card stores under ``metrics.leave_subjects_out``).
        model: the trained model of the fold ``publish`` (uncompiled).
        card: its card, with the scaler fitted on that fold's training windows.
        train: that fold's training windows.
        test: that fold's test windows (all windows of its subjects).
    """

    summary: dict[str, Any]
    model: Any
    card: ModelCard
    train: WindowSet
    test: WindowSet


def leave_subjects_out(
    windows: WindowSet,
    classes: Sequence[str],
    folds: Sequence[tuple[int, ...]],
    config: TrainConfig,
    *,
    seed: int,
    publish: tuple[int, ...],
) -> Evaluation:
    """Train and test one model per fold; keep the model of the fold ``publish``.

    Args:
        windows: every window of the data set (canonical units, unscaled).
        classes: class names, index = label.
        folds: test subjects of each fold (from :func:`subject_folds`).
        config: hyper-parameters of every fold's training.
        seed: random seed of every fold's training.
        publish: the fold (one of ``folds``) whose model is returned.
    """
    if tuple(publish) not in [tuple(f) for f in folds]:
        raise InputError(f"fold {publish} to publish is not among the folds {list(folds)}")
    fold_results: list[dict[str, Any]] = []
    pooled_true, pooled_pred = [], []
    kept: Evaluation | None = None
    for k, test_subjects in enumerate(folds):
        t0 = time.monotonic()
        is_test = np.isin(windows.subjects, test_subjects)
        train, test = windows.select(~is_test), windows.select(is_test)
        model, card, _ = train_model(train, classes, config, seed=seed)
        pred = predict_classes(model, card, test.values)
        pooled_true.append(test.labels)
        pooled_pred.append(pred)
        s = scores(test.labels, pred, len(classes))
        del s["confusion"]
        s = {"test_subjects": list(test_subjects), **s, "n_train_windows": len(train)}
        s["seconds"] = round(time.monotonic() - t0, 1)
        fold_results.append(s)
        log.info("fold %d/%d %s", k + 1, len(folds), s)
        if tuple(test_subjects) == tuple(publish):
            kept = Evaluation({}, model, card, train, test)
    assert kept is not None  # publish is one of the folds (checked above)

    accs = [f["accuracy"] for f in fold_results]
    f1s = [f["macro_f1"] for f in fold_results]
    pooled = scores(np.concatenate(pooled_true), np.concatenate(pooled_pred), len(classes))
    summary = {
        "scheme": f"{len(folds)} folds, each testing on 2 subjects unseen in training and scaling",
        "folds": fold_results,
        "mean": {"accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s))},
        "std": {"accuracy": float(np.std(accs)), "macro_f1": float(np.std(f1s))},
        "pooled": {
            "accuracy": pooled["accuracy"],
            "macro_f1": pooled["macro_f1"],
            "n_windows": pooled["n_windows"],
        },
        "confusion_matrix": {
            "labels": list(classes),
            "rows": "true class",
            "columns": "predicted class",
            "counts": pooled["confusion"],
        },
        "published_unseen_subjects_accuracy": PUBLISHED_UNSEEN_SUBJECT_ACCURACY,
        "published_reference": PUBLISHED_REFERENCE,
    }
    return Evaluation(summary, kept.model, kept.card, kept.train, kept.test)


def validate_config(
    config: TrainConfig,
    *,
    seed: int = 0,
    splits: Sequence[tuple[int, ...]] = TUNING_SPLITS,
) -> list[dict[str, Any]]:
    """Validation curves of a configuration on splits of the training subjects (tuning).

    For each split, trains on the non-held-out subjects outside the split and reports
    the validation accuracy after every epoch. The held-out subjects take no part.

    Example:
        ``validate_config(replace(TrainConfig(), rotation_deg=30))``

    Returns:
        One dict per split: ``validation_subjects``, ``val_accuracy`` (per epoch),
        ``accuracy`` (training, per epoch), ``seconds``.
    """
    for split in splits:
        if set(split) & set(HELDOUT_SUBJECTS):
            raise InputError(f"validation split {split} uses held-out subjects")
    ds = load_watch_dataset()
    windows = windows_of(ds.recordings, Preprocessor(base_card(ds.classes)))
    usable = ~np.isin(windows.subjects, HELDOUT_SUBJECTS)
    out = []
    with deterministic_tensorflow():
        for split in splits:
            t0 = time.monotonic()
            is_val = np.isin(windows.subjects, split)
            _, _, hist = train_model(
                windows.select(usable & ~is_val),
                ds.classes,
                config,
                seed=seed,
                validation=windows.select(is_val),
            )
            out.append(
                {
                    "validation_subjects": list(split),
                    "val_accuracy": hist["val_accuracy"],
                    "accuracy": hist["accuracy"],
                    "seconds": round(time.monotonic() - t0, 1),
                }
            )
    return out
