"""Fitting one model: hyper-parameters, the scaler, augmented batches and the Keras fit.

Runs are seeded and use TensorFlow's deterministic ops
(:func:`deterministic_tensorflow`), so the same seed, versions and thread settings
give the same weights.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from har.domain.card import ModelCard, Scaler, Units
from har.domain.preprocessing import Preprocessor
from har.runtime.inference import configure_tensorflow
from har.settings import DEFAULT_MODEL_NAME
from har.training.augmentation import augment
from har.training.data import DATASET_RATE_HZ, WindowSet

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

#: The reference model's window geometry: 200 samples (4 s at 50 Hz), hop 100.
WINDOW = 200
HOP = 100


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        epochs: passes over the training windows (no early stopping: the count was
            chosen on a validation split of training subjects, see models/README.md).
        batch_size: windows per gradient step.
        learning_rate: Adam's initial rate; cosine decay to ``learning_rate * final_lr_ratio``.
        final_lr_ratio: learning rate at the last step relative to the first.
        rotation_deg: largest random rotation of a training window (degrees, random axis).
        magnitude_jitter: a training window's values are multiplied by a factor drawn
            from ``[1 - magnitude_jitter, 1 + magnitude_jitter]``.
        mirror_probability: share of training windows mirrored to the other arm
            (:data:`har.training.augmentation.MIRROR_SIGNS`).
        time_warp: a training window is stretched or compressed in time about its
            centre by a factor in ``[1 / (1 + time_warp), 1 + time_warp]`` (people do the
            same exercise at different speeds); samples past the ends repeat the edge.
        rotation_axis: ``None`` rotates about a random axis; 0, 1 or 2 about the watch's
            x, y or z axis only.
    """

    epochs: int = 25
    batch_size: int = 64
    learning_rate: float = 2e-3
    final_lr_ratio: float = 0.05
    rotation_deg: float = 15.0
    magnitude_jitter: float = 0.1
    mirror_probability: float = 0.5
    time_warp: float = 0.0
    rotation_axis: int | None = None


def available_cpus() -> int:
    """CPUs this process may run on (2 where the platform cannot say)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2


@contextmanager
def deterministic_tensorflow() -> Iterator[None]:
    """Configure TensorFlow for a reproducible run, then switch determinism back off
    (when it was off), so a caller's process (a test session) is left as it was.

    Intra-op threads: every CPU the process may use; inter-op threads: 2, so the two
    directions of a bidirectional LSTM can run side by side.
    """
    configure_tensorflow(intra_op_threads=available_cpus(), inter_op_threads=2)
    import tensorflow as tf

    # The public API can only switch determinism on; reading and undoing it needs
    # TensorFlow's own module (present in 2.x; without it the setting stays on).
    tf_config: Any = None
    was_on = True
    try:
        from tensorflow.python.framework import config

        was_on, tf_config = bool(config.is_op_determinism_enabled()), config
    except (ImportError, AttributeError):
        pass
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if tf_config is not None and not was_on:
            tf_config.disable_op_determinism()


def fit_scaler(windows: np.ndarray) -> Scaler:
    """Per-channel mean and standard deviation over every sample of ``windows``.

    Args:
        windows: ``(N, window, 6)`` canonical units (m/s², deg/s), training windows only.
    """
    flat = np.asarray(windows, np.float64).reshape(-1, windows.shape[-1])
    mean = flat.mean(axis=0)
    sd = flat.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return Scaler(mean=[float(m) for m in mean], scale=[float(s) for s in sd])


def base_card(classes: Sequence[str], scaler: Scaler | None = None) -> ModelCard:
    """The reference model's card: 200-sample windows, hop 100, 50 Hz, m/s² and deg/s.

    Without a scaler the card carries the identity scaler (used only to cut windows,
    which does not involve scaling).
    """
    return ModelCard(
        name=DEFAULT_MODEL_NAME,
        classes=list(classes),
        window=WINDOW,
        hop=HOP,
        sample_rate_hz=DATASET_RATE_HZ,
        units=Units(acc="m/s2", gyro="deg/s"),
        scaler=scaler or Scaler(mean=[0.0] * 6, scale=[1.0] * 6),
    )


def _batches(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def _py_dataset(
    windows: np.ndarray,
    labels: np.ndarray,
    pre: Preprocessor,
    config: TrainConfig,
    seed: int,
) -> Any:
    """A Keras PyDataset of augmented, scaled, shuffled training batches.

    Every batch is a pure function of ``(seed, epoch, batch index)``, so the order in
    which Keras asks for batches cannot change the result.
    """
    import keras

    class AugmentedWindows(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0

        def __len__(self) -> int:
            return _batches(len(windows), config.batch_size)

        def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
            order = np.random.default_rng([seed, self.epoch]).permutation(len(windows))
            sel = order[idx * config.batch_size : (idx + 1) * config.batch_size]
            rng = np.random.default_rng([seed, self.epoch, idx])
            x = augment(
                windows[sel],
                rng,
                config.rotation_deg,
                config.magnitude_jitter,
                config.mirror_probability,
                config.time_warp,
                config.rotation_axis,
            )
            return pre.scale(x), labels[sel]

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return AugmentedWindows()


def train_model(
    train: WindowSet,
    classes: Sequence[str],
    config: TrainConfig,
    *,
    seed: int = 0,
    validation: WindowSet | None = None,
    verbose: int = 0,
) -> tuple[keras.Model, ModelCard, dict[str, list[float]]]:
    """Fit the scaler and the model on training windows.

    Args:
        train: training windows, canonical units, unscaled (from
            :func:`har.training.data.windows_of`).
        classes: class names, index = label.
        config: hyper-parameters.
        seed: seeds Python, NumPy and TensorFlow (weights, dropout) and the augmentation.
        validation: windows to report loss/accuracy on after every epoch (tuning only).
        verbose: Keras fit verbosity.

    Returns:
        ``(model, card, history)``: the trained model (uncompiled copy, no optimizer
        state), its card with the fitted scaler, and Keras' per-epoch history.
    """
    import keras

    from har.training.architecture import build_model

    keras.utils.set_random_seed(seed)
    scaler = fit_scaler(train.values)
    card = base_card(classes, scaler)
    pre = Preprocessor(card)
    model = build_model(len(classes), card.window, card.n_channels)
    steps = config.epochs * _batches(len(train), config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, steps), alpha=config.final_lr_ratio
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    data = _py_dataset(train.values, train.labels, pre, config, seed)
    val = None
    if validation is not None and len(validation):
        val = (pre.scale(validation.values), validation.labels)
    hist = model.fit(data, epochs=config.epochs, validation_data=val, verbose=verbose)
    clean = build_model(len(classes), card.window, card.n_channels)
    clean.set_weights(model.get_weights())
    card.check_model(clean.input_shape, clean.output_shape)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return clean, card, history
