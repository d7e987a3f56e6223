"""The promotion gate: a candidate version may take an alias only if its card fits the
model, the model loads and predicts, and on evaluation data its accuracy and macro-F1
are not worse than the alias's current holder beyond the tolerances in settings
(``gate_accuracy_tolerance``, ``gate_macro_f1_tolerance``).

Evaluation data is an ``.npz`` with ``windows`` ``(N, window, 6)`` float32 in canonical
units (m/s², deg/s, before the card's scaler) and ``labels`` ``(N,)``: class names, or
integer indices into the file's own ``classes`` array (the layout of
``tests/fixtures/heldout_windows.npz``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.runtime import model_store


@dataclass(frozen=True)
class EvalData:
    """Labelled evaluation windows: ``windows`` ``(N, window, 6)`` canonical units,
    ``labels`` ``(N,)`` class names, ``source`` the file they came from."""

    windows: np.ndarray
    labels: np.ndarray
    source: str


@dataclass(frozen=True)
class Figures:
    """One model's figures on the evaluation data."""

    version: str
    accuracy: float
    macro_f1: float
    n_windows: int

    def __str__(self) -> str:
        return (
            f"version {self.version}: accuracy {self.accuracy:.4f}, "
            f"macro-F1 {self.macro_f1:.4f} ({self.n_windows} windows)"
        )


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: ``passed``, the figures compared and why it refused."""

    passed: bool
    candidate: Figures
    holder: Figures | None
    reasons: tuple[str, ...]


def load_eval_data(path: Path, limit: int | None = None) -> EvalData:
    """Read an evaluation ``.npz`` (see the module docstring); ``limit`` keeps the first
    ``limit`` windows (a quick check)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"evaluation data not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            windows = np.asarray(f["windows"], np.float32)
            labels = np.asarray(f["labels"])
            classes = np.asarray(f["classes"]) if "classes" in f.files else None
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(
            f"{path}: an .npz with 'windows' (N x window x 6) and 'labels' is needed ({exc})"
        ) from None
    if windows.ndim != 3 or len(labels) != len(windows) or len(windows) == 0:
        raise InputError(
            f"{path}: 'windows' must be (N, window, 6) with one label each, got "
            f"{windows.shape} and {labels.shape}"
        )
    if labels.dtype.kind in "iu":
        if classes is None:
            raise InputError(f"{path}: integer 'labels' need a 'classes' array naming them")
        labels = classes[labels]
    labels = labels.astype(str)
    if limit is not None:
        windows, labels = windows[:limit], labels[:limit]
    return EvalData(windows, labels, str(path))


def macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in ``true``."""
    scores = []
    for cls in np.unique(true):
        tp = np.sum((pred == cls) & (true == cls))
        fp = np.sum((pred == cls) & (true != cls))
        fn = np.sum((pred != cls) & (true == cls))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def evaluate(folder: Path, data: EvalData, version: str) -> Figures:
    """Load a version's ``model.keras`` + ``card.json`` from ``folder``, check the card
    fits and the model predicts (``model_store.validate``), then score ``data``.

    Raises:
        InputError: the files do not load, the card does not fit, or the data's window
            length differs from the card's.
    """
    from har.domain.preprocessing import Preprocessor
    from har.runtime.inference import CompiledModel

    card = ModelCard.from_file(folder / model_store.CARD_FILE)
    model = model_store.load_keras(folder / model_store.MODEL_FILE)
    model_store.validate(model, card)
    if data.windows.shape[1:] != (card.window, card.n_channels):
        raise InputError(
            f"evaluation windows are {data.windows.shape[1:]} but version {version}'s card "
            f"takes ({card.window}, {card.n_channels})"
        )
    pre = Preprocessor(card)
    probs = CompiledModel(model, xla=False)(pre.scale(data.windows))
    pred = np.asarray(card.classes)[np.asarray(probs).argmax(axis=1)]
    return Figures(
        version,
        float(np.mean(pred == data.labels)),
        macro_f1(data.labels, pred),
        len(data.labels),
    )


def decide(
    candidate: Figures, holder: Figures | None, *, accuracy_tol: float, macro_f1_tol: float
) -> Decision:
    """Pass unless a figure of the candidate is below the holder's minus its tolerance."""
    reasons = []
    if holder is not None:
        for label, cand, held, tol in (
            ("accuracy", candidate.accuracy, holder.accuracy, accuracy_tol),
            ("macro-F1", candidate.macro_f1, holder.macro_f1, macro_f1_tol),
        ):
            if cand < held - tol:
                reasons.append(
                    f"{label} {cand:.4f} is {held - cand:.4f} below the holder's {held:.4f} "
                    f"(tolerance {tol:.4f})"
                )
    return Decision(not reasons, candidate, holder, tuple(reasons))
