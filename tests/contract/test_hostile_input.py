"""Hostile input gets a 4xx naming the problem, at bounded cost, and the server keeps serving.

Each case was a 500 before (a hostile-client probe on a real ``bentoml serve``): numbers
beyond a double (``OverflowError``), JSON nested past any parser's depth
(``RecursionError``), a unit nested ~1,000 deep (``RecursionError`` in its error
message), an ``.npy`` header declaring terabytes (``MemoryError``), multipart text fields
and Garmin export cells nested too deeply, a Garmin cell that is not a list. After each,
a valid ``/predict`` must still answer 200.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.helpers.paths import ROOT

PRODUCTION = ROOT / "data" / "production"
#: Seconds any of these requests may take (they are refused early; the machine is shared).
BOUNDED_S = 10.0


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    """(status, body text) of a POST of raw ``body``."""
    req = urllib.request.Request(url, body, {"content-type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def multipart(
    url: str, files: dict[str, tuple[str, bytes]], fields: dict[str, str]
) -> tuple[int, str]:
    """A multipart POST of ``files`` (form name -> (file name, bytes)) and text ``fields``."""
    b = uuid.uuid4().hex
    parts = [
        f'--{b}\r\nContent-Disposition: form-data; name="{name}"; filename="{fname}"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, (fname, data) in files.items()
    ]
    parts += [
        f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
        + v.encode()
        + b"\r\n"
        for k, v in fields.items()
    ]
    return post(
        url, b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"
    )


def window_body(window: list[list[float]], raw: str, at: tuple[int, int] = (3, 2)) -> bytes:
    """A one-window ``/predict`` body whose value at sample ``at[0]``, channel ``at[1]`` is
    the raw JSON text ``raw``."""
    rows = [[json.dumps(v) for v in row] for row in window]
    rows[at[0]][at[1]] = raw
    return ('{"windows": [[' + ",".join("[" + ",".join(r) + "]" for r in rows) + "]]}").encode()


def refused(served, window, send) -> str:
    """``send()``'s (status, text) must be a 4xx, soon; then a valid /predict still answers.
    The error message."""
    started = time.monotonic()
    status, text = send()
    took = time.monotonic() - started
    assert 400 <= status < 500, (status, text[:500])
    assert took < BOUNDED_S, f"{took:.1f} s"
    ok, answer = post(f"{served.url}/predict", json.dumps({"windows": [window]}).encode())
    assert ok == 200, answer[:300]
    assert len(json.loads(answer)["predictions"]) == 1
    message = json.loads(text)["error"]
    assert len(message) < 1000, "the message echoes the input"
    return str(message)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (str(10**400), "the number 100000000000... (401 characters)"),  # an integer, past a double
        ("-1e400", "the number -1e400"),  # a float, past a double
        ("1e39", "the number 1e+39"),  # a double, past float32
    ],
)
def test_numbers_out_of_range_are_named_where_they_are(served, window, raw, shown):
    message = refused(
        served, window, lambda: post(f"{served.url}/predict", window_body(window, raw))
    )
    assert message.startswith(f"windows[0][3][2]: {shown} is out of range"), message


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "body",
    [
        '{"windows": ' + DEEP + "}",  # the windows value
        DEEP,  # the whole body
        '{"windows": ' + "[" * 100_000 + "NaN" + "]" * 100_000 + "}",  # NaN: past orjson too
        '{"windows": ' + "[" * 1010 + "NaN" + "]" * 1010 + "}",  # the fallback parser's limit
    ],
    ids=["windows", "whole-body", "with-nan", "fallback-depth"],
)
def test_json_nested_too_deeply_is_400(served, window, body):
    message = refused(served, window, lambda: post(f"{served.url}/predict", body.encode()))
    assert "nested too deeply" in message, message


def test_units_nested_deep_or_huge_are_named_not_echoed(served, window):
    deep = "[" * 1000 + '"g"' + "]" * 1000
    body = json.dumps({"windows": [window]})[:-1] + ', "units": {"acc": ' + deep + "}}"
    message = refused(served, window, lambda: post(f"{served.url}/predict", body.encode()))
    assert "unknown accelerometer unit an array" in message, message
    huge = json.dumps({"windows": [window], "units": {"gyro": "x" * 1_000_000}}).encode()
    message = refused(served, window, lambda: post(f"{served.url}/predict", huge))
    assert "unknown gyroscope unit" in message and "(1000000 characters)" in message, message


def test_npy_header_declaring_terabytes_is_400(served, window):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 6), }"
    header += b" " * (117 - len(header)) + b"\n"
    body = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(96)
    message = refused(
        served,
        window,
        lambda: post(f"{served.url}/predict", body, "application/x-npy"),
    )
    assert "declares shape (100000, 100000, 6)" in message, message


def test_recording_form_field_nested_too_deeply_is_400(served, window):
    csv_file = ("session.csv", (PRODUCTION / "session_canonical_100hz.csv").read_bytes())
    message = refused(
        served,
        window,
        lambda: multipart(
            f"{served.url}/predict_recording", {"file": csv_file}, {"acc_unit": DEEP}
        ),
    )
    assert "form field 'acc_unit'" in message and "nested too deeply" in message, message
    message = refused(
        served,
        window,
        lambda: multipart(
            f"{served.url}/predict_recording", {"file": csv_file}, {"gyro_unit": str(10**400)}
        ),
    )
    assert "unknown gyroscope unit '1000000000" in message, message


def _garmin(cell: str, column: str = "calibrated_accel_x") -> bytes:
    """The production accelerometer export with its first row's ``column`` set to ``cell``."""
    rows = list(
        csv.reader(io.StringIO((PRODUCTION / "session-accelerometer_data.csv").read_text()))
    )
    rows[1][rows[0].index(column)] = cell
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("column", "cell", "needle"),
    [
        ("sample_time_offset", DEEP, "nested too deeply"),
        ("calibrated_accel_x", "[" * 100_000, "nested too deeply"),
        ("calibrated_accel_y", "5", "must be a JSON list"),
        ("timestamp_ms", str(10**400), "malformed Garmin row"),
    ],
)
def test_garmin_cells_nested_too_deeply_or_not_lists_are_400(served, window, column, cell, needle):
    files = {
        "accelerometer": ("a.csv", _garmin(cell, column)),
        "gyroscope": ("g.csv", (PRODUCTION / "session-gyroscope_data.csv").read_bytes()),
    }
    message = refused(
        served, window, lambda: multipart(f"{served.url}/predict_recording", files, {})
    )
    assert needle in message and "accelerometer" in message, message
