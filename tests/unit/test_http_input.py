"""har.http_input: the /predict body parsed straight to float32 (JSON and .npy)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from har.card import CANONICAL_UNITS, Units
from har.errors import InputError
from har.http_input import parse_json, parse_npy


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_json_windows_become_one_float32_array_with_units():
    x = np.random.default_rng(0).normal(size=(2, 5, 6))
    body = json.dumps({"windows": x.tolist(), "units": {"acc": "g"}}).encode()
    windows, units = parse_json(body)
    assert isinstance(windows, np.ndarray) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows, x.astype(np.float32))
    assert units == Units(acc="g")


def test_json_without_units_is_canonical():
    _, units = parse_json(b'{"windows": [[[0, 1, 2, 3, 4, 5]]]}')
    assert units == CANONICAL_UNITS


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"units": {}}', "missing field 'windows'"),
        (b'{"windows": [], "extra": 1}', "unknown fields ['extra']"),
        (b'{"windows": [[["abc", 1, 2, 3, 4, 5]]]}', "windows must be an array of numbers"),
        (b'{"windows": [[[1, 2], [1, 2, 3]]]}', "windows must be an array of numbers"),
    ],
)
def test_json_mistakes_are_returned_as_input_errors(body, needle):
    windows, _ = parse_json(body)
    assert isinstance(windows, InputError)
    assert needle in str(windows)


@pytest.mark.parametrize(
    ("units", "needle"), [({"acc": "furlong"}, "units: unknown"), ("g", "units must be")]
)
def test_json_bad_units_name_the_units(units, needle):
    windows, parsed = parse_json(json.dumps({"windows": [[[0] * 6]], "units": units}).encode())
    assert isinstance(windows, np.ndarray)
    assert isinstance(parsed, InputError) and needle in str(parsed)


def test_json_non_finite_tokens_still_parse_so_the_scorer_can_name_them():
    windows, _ = parse_json(b'{"windows": [[[NaN, Infinity, 0, 0, 0, 0]]]}')
    assert isinstance(windows, np.ndarray)
    assert np.isnan(windows[0, 0, 0]) and np.isinf(windows[0, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_npy_body_any_real_dtype_becomes_float32(dtype):
    x = np.arange(2 * 4 * 6).reshape(2, 4, 6).astype(dtype)
    windows, units = parse_npy(_npy(x), {"acc_unit": "milli_g", "gyro_unit": "rad/s"})
    assert isinstance(windows, np.ndarray) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows, x.astype(np.float32))
    assert units == Units(acc="milli_g", gyro="rad/s")


def test_npy_body_without_query_units_is_canonical():
    _, units = parse_npy(_npy(np.zeros((1, 4, 6), np.float32)), {})
    assert units == CANONICAL_UNITS


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"\x93NUMPY garbage", "not a readable .npy"),
        (_npy(np.zeros((1, 4, 6), np.float32))[:-8], "not a readable .npy"),  # truncated
        (_npy(np.array([{"a": 1}], dtype=object)), "not a readable .npy"),  # pickle refused
        (_npy(np.array(["abc"])), "real numbers"),
        (_npy(np.zeros((1, 4, 6), np.complex64)), "real numbers"),
    ],
)
def test_npy_mistakes_are_returned_as_input_errors(body, needle):
    windows, _ = parse_npy(body, {})
    assert isinstance(windows, InputError)
    assert needle in str(windows)


def test_npy_bad_query_unit_names_the_units():
    _, units = parse_npy(_npy(np.zeros((1, 4, 6), np.float32)), {"gyro_unit": "rpm"})
    assert isinstance(units, InputError) and "gyroscope unit 'rpm'" in str(units)
