"""Fit a model's temperature on labelled windows at import and register (har/domain/calibration.py).

``import-model`` and ``register`` call :func:`calibration_for`: the model scores the
windows of an ``.npz`` (``windows`` ``(N, window, 6)`` in canonical units, m/s² and deg/s,
before the card's scaler; ``labels`` ``(N,)`` class names, or class ids with a ``classes``
array naming them: the format of ``promote --eval-data``), scaled by the card's scaler
as the service scales them, and :func:`har.domain.calibration.calibrate` fits and checks
the temperature on two disjoint parts. Optional ``recording`` or ``subjects`` arrays keep
each recording (or subject) on one side of the split.

Default data: the bundled held-out windows (``tests/fixtures/heldout_windows.npz``) when
their classes and window are the card's (the bundled model and its retrains); otherwise no
calibration is fitted and the card says none (the service serves raw probabilities).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from har.domain.calibration import Calibration, calibrate
from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor


def read_labelled(
    path: Path, card: ModelCard
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """``(canonical windows, label ids, groups or None, group name)`` of a labelled ``.npz``.

    Raises:
        InputError: unreadable file, missing arrays, wrong shape, labels not in the card's classes.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            windows = np.asarray(f["windows"])
            labels = np.asarray(f["labels"])
            classes = np.asarray(f["classes"]).astype(str) if "classes" in f.files else None
            group_name = next((k for k in ("recording", "subjects") if k in f.files), "")
            groups = np.asarray(f[group_name]) if group_name else None
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(
            f"{path}: an .npz with 'windows' (N x window x 6, canonical units) and 'labels' "
            f"(class names) is needed ({exc})"
        ) from None
    if len(labels) != len(windows):
        raise InputError(f"{path}: {len(windows)} windows but {len(labels)} labels")
    if labels.dtype.kind in "iu":
        if classes is None:
            raise InputError(f"{path}: integer 'labels' need a 'classes' array naming them")
        labels = classes[labels]
    names = labels.astype(str)
    index = {c: i for i, c in enumerate(card.classes)}
    unknown = sorted(set(names.tolist()) - set(index))
    if unknown:
        raise InputError(
            f"{path}: labels {unknown[:5]} are not classes of the card ({card.classes})"
        )
    canonical = Preprocessor(card).check_windows(windows)
    ids = np.array([index[c] for c in names.tolist()], np.int64)
    return canonical, ids, groups, group_name or "group"


def default_data(card: ModelCard, heldout: Path) -> Path | None:
    """``heldout`` (the bundled held-out windows) when it fits ``card`` (same classes in the
    same order, same window); else ``None``."""
    if not heldout.is_file():
        return None
    with np.load(heldout) as f:
        classes = np.asarray(f["classes"]).astype(str).tolist() if "classes" in f.files else None
        shape = f["windows"].shape
    if classes != list(card.classes) or tuple(shape[1:]) != (card.window, card.n_channels):
        return None
    return heldout


def calibration_for(
    model: Any, card: ModelCard, data: Path | None = None, *, heldout: Path
) -> Calibration | None:
    """The calibration of ``model`` on ``data`` (default: ``heldout`` if it fits the card, see
    :func:`default_data`; ``None`` when neither), its probabilities computed as the service
    computes them.

    Raises:
        InputError: ``data`` given but unusable (see :func:`read_labelled`), or too few windows.
    """
    from har.runtime.inference import CompiledModel

    path = Path(data) if data is not None else default_data(card, heldout)
    if path is None:
        return None
    windows, labels, groups, group_name = read_labelled(path, card)
    probs = CompiledModel(model, xla=False)(Preprocessor(card).scale(windows))
    try:
        return calibrate(
            np.asarray(probs), labels, groups=groups, group_name=group_name, data=[path.name]
        )
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
