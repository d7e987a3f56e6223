"""An over-confident Keras model: the bundled model with its output logits multiplied.

The bundled model is already close to calibrated on its held-out windows (docs/calibration.md),
so a fitted temperature does not help it. This model is the same network with the kernel and
bias of its last ``Dense`` (the softmax's input) scaled by ``factor``: the same predicted class
for every window, confidences pushed towards 1 — the over-confidence temperature scaling is
for, in a real Keras model that import-model and the service handle like any other.
"""

from __future__ import annotations

from pathlib import Path


def write_overconfident_model(dest: Path, factor: float = 3.0, first_bias: float = 0.0) -> Path:
    """Save the over-confident variant of the bundled model as ``dest`` (a ``.keras`` file);
    ``first_bias`` is added to the first class's output bias after scaling (a model that
    disagrees with the bundled one on some windows)."""
    import keras

    from har.runtime import model_store

    model = model_store.load_keras(model_store.BUNDLED_MODEL)
    last = model.layers[-1]
    assert isinstance(last, keras.layers.Dense), type(last)
    kernel, bias = last.get_weights()
    bias = bias * factor
    bias[0] += first_bias
    last.set_weights([kernel * factor, bias])
    model.save(dest)
    return dest
