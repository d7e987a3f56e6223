"""The 1D-CNN-BiLSTM architecture of the user's model, for any number of classes.

The bundled reference model is built with it, and tests use it to build a model
shaped like the user's 11-class one (about 499 K parameters).
"""

from __future__ import annotations

import keras
from keras import layers


def build_model(n_classes: int, window: int = 200, channels: int = 6) -> keras.Model:
    """The Sequential 1D-CNN-BiLSTM classifier, uncompiled.

    Args:
        n_classes: number of activities (softmax outputs).
        window: samples per window (200 = 4 s at 50 Hz).
        channels: input channels (acc x, y, z in m/s², gyro x, y, z in deg/s; scaled).

    Returns:
        A model mapping ``(batch, window, channels)`` float32 z-scored windows to
        ``(batch, n_classes)`` class probabilities.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    return keras.Sequential(
        [
            keras.Input(shape=(window, channels)),
            layers.Conv1D(16, kernel_size=2, activation="relu"),
            layers.BatchNormalization(),
            layers.Dropout(0.1),
            layers.Conv1D(32, kernel_size=2, activation="relu"),
            layers.BatchNormalization(),
            layers.Dropout(0.2),
            layers.Bidirectional(layers.LSTM(64, return_sequences=True)),
            layers.BatchNormalization(),
            layers.Dropout(0.2),
            layers.Bidirectional(layers.LSTM(32, return_sequences=True)),
            layers.BatchNormalization(),
            layers.Dropout(0.2),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.BatchNormalization(),
            layers.Dropout(0.5),
            layers.Dense(n_classes, activation="softmax"),
        ],
        name="har_cnn_bilstm",
    )
