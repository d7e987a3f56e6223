"""har.core.open_inference: names, metadata, checks made before data is read, decoding, units,
outputs, and inference through the scorer (what /predict computes, monitored)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from har.core.open_inference import (
    ACTIVITY_ID,
    PROBABILITIES,
    Inference,
    ModelNotFoundError,
    TensorHeader,
    element_count,
)
from har.domain.card import CANONICAL_UNITS, Units
from har.domain.errors import InputError
from tests.helpers.v2_model import CARD, v2_model, windows


def test_name_and_version_come_from_the_tag():
    model, _ = v2_model()
    assert (model.name, model.version) == ("t", "v1")
    model.check_model("t")
    model.check_model("t", "v1")
    with pytest.raises(ModelNotFoundError, match="unknown model 'x'"):
        model.check_model("x")
    with pytest.raises(ModelNotFoundError, match="unknown version 'v2'"):
        model.check_model("t", "v2")


def test_metadata_describes_the_card():
    model, _ = v2_model()
    meta = model.model_metadata()
    assert meta["inputs"] == [{"name": "windows", "datatype": "FP32", "shape": [-1, 20, 6]}]
    assert meta["outputs"][0] == {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, 3]}
    assert meta["outputs"][1] == {"name": ACTIVITY_ID, "datatype": "INT64", "shape": [-1]}
    assert meta["properties"]["classes"] == "a,b,c" and meta["versions"] == ["v1"]
    assert "binary_tensor_data" in model.server_metadata()["extensions"]


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ([], "has 0 inputs"),
        ([TensorHeader("windows", "FP32", (1, 20, 6))] * 2, "has 2 inputs"),
        ([TensorHeader("x", "FP32", (1, 20, 6))], "unknown input 'x'"),
        ([TensorHeader("windows", "FP64", (1, 20, 6))], "must be FP32, got 'FP64'"),
        ([TensorHeader("windows", "FP32", (1, 21, 6))], "shape [N, 20, 6]"),
        ([TensorHeader("windows", "FP32", (20, 6))], "shape [N, 20, 6]"),
        ([TensorHeader("windows", "FP32", (0, 20, 6))], "N >= 1"),
        ([TensorHeader("windows", "FP32", (-3, 20, 6))], "N >= 1"),
        ([TensorHeader("windows", "FP32", (10**15, 20, 6))], "too many windows"),
    ],
)
def test_inputs_are_checked_from_their_declaration(headers, words):
    model, _ = v2_model()
    with pytest.raises(InputError) as err:
        model.check_inputs(headers)
    assert words in str(err.value)


def test_decoding_raw_bytes_and_values():
    model, _ = v2_model()
    h = model.check_inputs([TensorHeader("windows", "FP32", (2, 20, 6))])
    w = windows(2)
    np.testing.assert_array_equal(model.decode_raw(h, w.astype("<f4").tobytes()), w)
    np.testing.assert_array_equal(model.decode_values(h, w.ravel().tolist()), w)
    np.testing.assert_array_equal(model.decode_values(h, w.tolist()), w)  # nested works too
    with pytest.raises(InputError, match=r"has 4 bytes of data; .* needs 960"):
        model.decode_raw(h, b"\0" * 4)
    with pytest.raises(InputError, match=r"has 3 values; .* needs 240"):
        model.decode_values(h, [1, 2, 3])
    for not_numbers in (["a"] * 240, ["1.5"] * 240, [True] * 240, [[1.0], 2.0]):
        with pytest.raises(InputError, match="must be numbers"):
            model.decode_values(h, not_numbers)


def test_units_and_outputs():
    model, _ = v2_model()
    assert model.units({}) == CANONICAL_UNITS
    assert model.units({"acc_unit": "g", "gyro_unit": "rad/s", "other": 1}) == Units(
        acc="g", gyro="rad/s"
    )
    with pytest.raises(InputError, match="furlongs"):
        model.units({"acc_unit": "furlongs"})
    with pytest.raises(InputError, match="must be a string"):
        model.units({"gyro_unit": 3})
    assert model.outputs([]) == (PROBABILITIES, ACTIVITY_ID)
    assert model.outputs([ACTIVITY_ID]) == (ACTIVITY_ID,)
    with pytest.raises(InputError, match="unknown output 'logits'"):
        model.outputs(["logits"])
    with pytest.raises(InputError, match="more than once"):
        model.outputs([PROBABILITIES, PROBABILITIES])


def test_infer_scores_through_the_scorer_and_monitoring():
    model, monitor = v2_model()
    w = windows(3)
    expected = asyncio.run(model.scorer.predict(w))
    canonical = asyncio.run(model.infer(Inference(w, CANONICAL_UNITS, model.outputs([]))))
    in_g = w.copy()
    in_g[..., :3] /= 9.80665
    declared = asyncio.run(model.infer(Inference(in_g, Units(acc="g"), (PROBABILITIES,))))
    probs, ids = canonical
    assert (probs.name, probs.datatype, ids.datatype) == (PROBABILITIES, "FP32", "INT64")
    np.testing.assert_array_equal(probs.array, expected.probs)
    np.testing.assert_array_equal(ids.array, expected.class_ids)
    np.testing.assert_allclose(declared[0].array, expected.probs, atol=1e-6)
    assert probs.raw() == expected.probs.astype("<f4").tobytes()
    assert monitor.windows == 9  # predict, then both inferences: every window observed
    bad = w.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        asyncio.run(model.infer(Inference(bad, CANONICAL_UNITS, (PROBABILITIES,))))


def test_ready_and_element_count():
    assert asyncio.run(v2_model(ready=False)[0].ready()) is False
    assert asyncio.run(v2_model()[0].ready()) is True
    assert element_count((2, 20, 6)) == 240 and element_count((-1, 6)) == 0
    assert CARD.window == 20
