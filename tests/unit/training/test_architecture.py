"""har.training.architecture: the user's CNN + BiLSTM architecture."""

from __future__ import annotations

EXPECTED_LAYERS = [
    "Conv1D",
    "BatchNormalization",
    "Dropout",
    "Conv1D",
    "BatchNormalization",
    "Dropout",
    "Bidirectional",
    "BatchNormalization",
    "Dropout",
    "Bidirectional",
    "BatchNormalization",
    "Dropout",
    "Flatten",
    "Dense",
    "BatchNormalization",
    "Dropout",
    "Dense",
]


def test_user_architecture_with_11_classes():
    from har.training.architecture import build_model

    model = build_model(11)
    # "about 499 K" (har/training/architecture.py)
    assert 495_000 <= model.count_params() <= 503_000
    assert tuple(model.input_shape) == (None, 200, 6)
    assert tuple(model.output_shape) == (None, 11)
    assert [type(layer).__name__ for layer in model.layers] == EXPECTED_LAYERS
    assert model.layers[-1].get_config()["activation"] == "softmax"
    lstm = [layer.forward_layer for layer in model.layers if hasattr(layer, "forward_layer")]
    assert [(x.units, x.return_sequences) for x in lstm] == [(64, True), (32, True)]
