"""har.http.request_body: the /predict body parsed straight to float32 (JSON and .npy)."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

from har.domain.card import CANONICAL_UNITS, Units
from har.domain.errors import InputError
from har.http.request_body import parse_json, parse_npy


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
def test_json_mistakes_are_raised_as_input_errors(body, needle):
    with pytest.raises(InputError) as info:
        parse_json(body)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("units", "needle"), [({"acc": "furlong"}, "units: unknown"), ("g", "units must be")]
)
def test_json_bad_units_name_the_units(units, needle):
    with pytest.raises(InputError) as info:
        parse_json(json.dumps({"windows": [[[0] * 6]], "units": units}).encode())
    assert needle in str(info.value)


def test_json_windows_mistake_is_named_before_the_units():
    with pytest.raises(InputError, match="windows must be an array of numbers"):
        parse_json(b'{"windows": [[["abc", 1, 2, 3, 4, 5]]], "units": {"acc": "furlong"}}')
    with pytest.raises(InputError, match=r"not a readable \.npy"):
        parse_npy(b"\x93NUMPY garbage", {"gyro_unit": "rpm"})


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
def test_npy_mistakes_are_raised_as_input_errors(body, needle):
    with pytest.raises(InputError) as info:
        parse_npy(body, {})
    assert needle in str(info.value)


def test_npy_bad_query_unit_names_the_units():
    with pytest.raises(InputError, match="gyroscope unit 'rpm'"):
        parse_npy(_npy(np.zeros((1, 4, 6), np.float32)), {"gyro_unit": "rpm"})


def _body_with(value: bytes, at: tuple[int, int, int] = (0, 3, 2)) -> bytes:
    """A 1-window body (200 x 6 zeros) whose value ``at`` is the raw JSON ``value``."""
    rows = [[b"0"] * 6 for _ in range(200)]
    rows[at[1]][at[2]] = value
    window = b"[" + b",".join(b"[" + b",".join(r) + b"]" for r in rows) + b"]"
    return b'{"windows": [' + window + b"]}"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (str(10**400).encode(), "the number 100000000000... (401 characters)"),  # int beyond double
        (b"-" + b"9" * 6000, "the number -99999999999... (6000 characters)"),  # beyond int() too
        (b"1e400", "the number 1e400"),  # float beyond double
        (b"1e39", "the number 1e+39"),  # a double, beyond float32
        (b"-3.5e38", "the number -3.5e+38"),
    ],
)
def test_json_numbers_out_of_range_are_named_where_they_are(value, shown):
    with pytest.raises(InputError) as info:
        parse_json(_body_with(value))
    assert str(info.value).startswith(f"windows[0][3][2]: {shown} is out of range"), info.value


def test_json_largest_float32_is_in_range():
    windows, _ = parse_json(_body_with(b"3.4e38"))
    assert isinstance(windows, np.ndarray) and np.isfinite(windows).all()


def test_json_non_number_leaf_is_named_where_it_is():
    with pytest.raises(InputError, match=r"windows\[0\]\[7\]\[1\] is 'abc'"):
        parse_json(_body_with(b'"abc"', at=(0, 7, 1)))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # the whole body
        b'{"windows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # the windows field
        b'{"windows": ' + b"[" * 100_000 + b"NaN" + b"]" * 100_000 + b"}",  # past orjson, too
        b'{"windows": [[[0,0,0,0,0,0]]], "units": {"acc": ' + b"[" * 5000 + b"}",  # unclosed
    ],
)
def test_json_nested_too_deeply_is_refused_without_recursion(body):
    started = time.perf_counter()
    with pytest.raises(InputError, match="nested too deeply"):
        parse_json(body)
    assert time.perf_counter() - started < 1.0


def test_json_depth_the_fallback_parser_cannot_follow_is_refused_too():
    # NaN sends the body to the standard library's parser, whose recursion limit is lower
    body = b'{"windows": ' + b"[" * 1010 + b"NaN" + b"]" * 1010 + b"}"
    with pytest.raises(InputError, match="nested too deeply"):
        parse_json(body)


def test_json_units_nested_deep_are_named_not_echoed():
    deep = b"[" * 1000 + b'"g"' + b"]" * 1000
    with pytest.raises(InputError, match="unknown accelerometer unit an array"):
        parse_json(b'{"windows": [[[0,0,0,0,0,0]]], "units": {"acc": ' + deep + b"}}")


def test_json_huge_values_are_not_echoed_whole():
    huge = b"x" * 1_000_000
    for body in (
        b'{"windows": [[[0,0,0,0,0,0]]], "units": {"acc": "' + huge + b'"}}',
        b'{"windows": [[[0,0,0,0,0,0]]], "units": {"' + huge + b'": "g"}}',
        b'{"windows": [], "' + huge + b'": 1}',
    ):
        with pytest.raises(InputError) as info:
            parse_json(body)
        err = str(info.value)
        assert len(err) < 300 and "(1000000 characters)" in err, err[:300]


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (117 - len(header)) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def test_npy_header_declaring_more_than_the_body_holds_allocates_nothing():
    body = _npy_header((100_000, 100_000, 6)) + bytes(96)
    with pytest.raises(InputError) as info:
        parse_npy(body, {})
    assert "declares shape (100000, 100000, 6)" in str(info.value)
    assert "holds 96 bytes" in str(info.value)


def test_npy_fortran_order_and_big_endian_read_as_numpy_does():
    x = np.arange(2 * 4 * 6, dtype=">f8").reshape(2, 4, 6)
    windows, _ = parse_npy(_npy(np.asfortranarray(x)), {})
    assert isinstance(windows, np.ndarray)
    np.testing.assert_array_equal(windows, x.astype(np.float32))
