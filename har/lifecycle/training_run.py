"""The MLflow run of a training (``make train``), registered like ``python -m har register``.

Everything comes from what training writes: the ``.keras`` file, the card (whose
``training`` section holds the configuration and whose ``metrics`` hold the
leave-subjects-out folds, their pooled confusion matrix and the held-out scores)
and the reference profile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from har.domain.card import ModelCard
from har.lifecycle.register import Registered, register_model
from har.settings import Settings


def training_params(card: ModelCard) -> dict[str, str]:
    """MLflow parameters: the training configuration, seed, subjects and window counts."""
    training = card.training or {}
    params = {f"config.{k}": v for k, v in (training.get("config") or {}).items()}
    for key in ("seed", "quick", "n_train_windows", "train_subjects", "heldout_subjects"):
        if key in training:
            params[key] = training[key]
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


def confusion_figure(counts: list[list[int]], classes: list[str], title: str) -> Any:
    """A matplotlib figure of a confusion matrix (rows true, columns predicted class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.7 * len(classes)))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    for (i, j), n in np.ndenumerate(m):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if n > m.max() / 2 else "k")
    fig.tight_layout()
    return fig


def log_training(c: Any, run_id: str, card: ModelCard) -> None:
    """Log a card's training parameters, per-fold metrics (step = fold) and confusion
    matrix images into run ``run_id``."""
    import matplotlib.pyplot as plt
    from mlflow.entities import Metric, Param

    params = [Param(k, v[:6000]) for k, v in training_params(card).items()]
    lso = card.metrics.get("leave_subjects_out") or {}
    metrics = []
    for step, fold in enumerate(lso.get("folds") or []):
        for key in ("accuracy", "macro_f1"):
            if key in fold:
                metrics.append(Metric(f"fold.{key}", float(fold[key]), 0, step))
    c.log_batch(run_id, metrics=metrics, params=params)
    images = []
    if lso.get("confusion_matrix"):
        cm = lso["confusion_matrix"]
        images.append((cm["counts"], cm["labels"], "leave-subjects-out (pooled)", "lso"))
    heldout = card.metrics.get("heldout") or {}
    if heldout.get("confusion"):
        images.append((heldout["confusion"], card.classes, "held-out subjects", "heldout"))
    for counts, classes, title, stem in images:
        fig = confusion_figure(counts, list(classes), title)
        c.log_figure(run_id, fig, f"confusion_matrix_{stem}.png")
        plt.close(fig)


def log_training_run(
    model_path: Path,
    card_path: Path,
    settings: Settings,
    *,
    reference_profile: Path | None = None,
    name: str | None = None,
) -> Registered:
    """Log a finished training as an MLflow run and register its model as a new version.

    Args:
        model_path: the trained ``.keras`` file.
        card_path: its card as training wrote it (``training`` and ``metrics`` sections).
        reference_profile: the reference profile training wrote beside the model.
        name: registered model name (default: the card's ``name``).

    Returns:
        The new version (``str()`` is ``NAME/VERSION``).
    """
    return register_model(
        model_path,
        card_path,
        settings,
        name=name,
        reference_profile=reference_profile,
        run_name="train-reference",
        log_extra=log_training,
    )
