"""``python -m har train-reference``: train, evaluate and save the bundled reference model.

Stages, each in its own module of :mod:`har.training`: the data set and its
windows (:mod:`~har.training.data`), augmentation (:mod:`~har.training.augmentation`),
fitting (:mod:`~har.training.fit`), leave-subjects-out evaluation
(:mod:`~har.training.evaluate`), what is written beside the model
(:mod:`~har.training.artifacts`) and the demo data (:mod:`~har.training.demo_data`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor
from har.runtime.model_store import BUNDLED_MODEL_FILE, CARD_FILE, REFERENCE_FILE
from har.settings import PRETRAINED_DIR
from har.training.artifacts import (
    HELDOUT_FILE,
    heldout_metrics,
    provenance,
    save_heldout,
    write_reference,
)
from har.training.data import HELDOUT_SUBJECTS, load_watch_dataset, windows_of
from har.training.demo_data import make_production_data
from har.training.evaluate import leave_subjects_out, subject_folds
from har.training.fit import TrainConfig, base_card, deterministic_tensorflow

log = logging.getLogger(__name__)


def train_reference(
    out_dir: Path,
    *,
    epochs: int | None = None,
    quick: bool = False,
    seed: int = 0,
    fixtures_dir: Path | None = None,
    production_dir: Path | None = None,
) -> Path:
    """Train, evaluate and save the reference model.

    Leave-subjects-out evaluation over 5 folds of 2 unseen subjects, then the model
    of the fold that tests on :data:`har.training.data.HELDOUT_SUBJECTS` is saved with
    its card.

    Args:
        out_dir: where ``har-cnn-bilstm.keras``, ``card.json`` and the monitoring
            reference profile ``reference_profile.bin`` go.
        epochs: override :attr:`TrainConfig.epochs`.
        quick: a smoke run (1 epoch unless ``epochs`` is given, only the held-out
            fold); its card says ``quick: true``. Refused when ``out_dir`` is the
            bundled model's folder.
        seed: random seed (weights, dropout, augmentation, shuffling).
        fixtures_dir: where ``heldout_windows.npz`` goes (default: ``out_dir``).
        production_dir: regenerate the demo data there (default: no demo data).

    Returns:
        Path of the written card.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    if quick and out_dir.resolve() == PRETRAINED_DIR.resolve():
        raise InputError(
            "a quick run makes a throwaway model; give it another output folder than the "
            f"bundled model's ({PRETRAINED_DIR})"
        )
    config = TrainConfig()
    if quick:
        config = replace(config, epochs=1)
    if epochs is not None:
        config = replace(config, epochs=int(epochs))

    with deterministic_tensorflow():
        return _train_reference(
            out_dir,
            config,
            quick=quick,
            seed=seed,
            fixtures_dir=Path(fixtures_dir or out_dir),
            production_dir=production_dir,
            started=started,
        )


def _train_reference(
    out_dir: Path,
    config: TrainConfig,
    *,
    quick: bool,
    seed: int,
    fixtures_dir: Path,
    production_dir: Path | None,
    started: float,
) -> Path:
    ds = load_watch_dataset()
    classes = list(ds.classes)
    all_windows = windows_of(ds.recordings, Preprocessor(base_card(classes)))
    heldout = tuple(sorted(HELDOUT_SUBJECTS))
    folds = [heldout] if quick else subject_folds(ds.subjects)
    ev = leave_subjects_out(all_windows, classes, folds, config, seed=seed, publish=heldout)

    out_dir.mkdir(parents=True, exist_ok=True)
    fixture = fixtures_dir / HELDOUT_FILE
    save_heldout(fixture, ev.test, classes)
    metrics = {
        "leave_subjects_out": ev.summary,
        "heldout": heldout_metrics(ev.model, ev.card, fixture, heldout),
    }
    model_path = out_dir / BUNDLED_MODEL_FILE
    ev.model.save(model_path)
    write_reference(
        ev.model,
        ev.card,
        ev.train.values,
        out_dir / REFERENCE_FILE,
        sequence_ids=ev.train.recording,
    )
    if production_dir is not None:
        make_production_data(Path(production_dir), heldout, window=ev.card.window, hop=ev.card.hop)

    wall = time.monotonic() - started
    training = provenance(config, ev.train, heldout, seed=seed, quick=quick, wall_time_s=wall)
    card = ev.card.model_copy(update={"training": training, "metrics": metrics})
    card_path = out_dir / CARD_FILE
    card.to_file(card_path)
    log.info("saved %s and %s in %.0f s", model_path, card_path, wall)
    return card_path
