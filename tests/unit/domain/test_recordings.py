"""Reading canonical CSV recordings and Garmin export pairs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from har.domain.card import Units
from har.domain.errors import RecordingError
from har.domain.recordings import Recording, read_csv_recording, read_garmin_pair, write_garmin_pair
from tests.helpers.paths import FIXTURES as FIX

HEADER = "timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n"


def test_garmin_fixture_parses_units_and_times():
    rec = read_garmin_pair(FIX / "garmin-accelerometer_data.csv", FIX / "garmin-gyroscope_data.csv")
    # 3 bursts of 25 samples at 10 ms, the bursts 250 ms apart -> 75 samples
    assert len(rec) == 75
    assert rec.start == pd.Timestamp("2025-03-24 07:52:19")
    np.testing.assert_allclose(rec.time[:3], [0.0, 0.01, 0.02], atol=1e-9)
    assert rec.time[25] == pytest.approx(0.25)
    np.testing.assert_allclose(rec.values[0, :3], [0, 0, 9.80665])  # 1000 milli-g
    np.testing.assert_allclose(rec.values[0, 3:5], [10, -5])  # deg/s kept
    # gyro rows carry k = row index in z: alignment picked the matching burst
    np.testing.assert_allclose(rec.values[[0, 30, 60], 5], [0, 1, 2])


def test_garmin_xlsx_reads_like_csv(tmp_path):
    for kind in ("accelerometer", "gyroscope"):
        df = pd.read_csv(FIX / f"garmin-{kind}_data.csv", dtype=str)
        df.to_excel(tmp_path / f"g-{kind}_data.xlsx", index=False)
    a = read_garmin_pair(tmp_path / "g-accelerometer_data.xlsx", tmp_path / "g-gyroscope_data.xlsx")
    b = read_garmin_pair(FIX / "garmin-accelerometer_data.csv", FIX / "garmin-gyroscope_data.csv")
    np.testing.assert_allclose(a.values, b.values)


def test_garmin_writer_round_trip(tmp_path):
    t = np.arange(500) / 100.0
    vals = np.column_stack([np.sin(t), np.cos(t), 9.8 + 0 * t, 20 * t, -t, 3 + 0 * t])
    write_garmin_pair(Recording(t, vals), tmp_path / "a.csv", tmp_path / "g.csv")
    rec = read_garmin_pair(tmp_path / "a.csv", tmp_path / "g.csv")
    assert len(rec) == 500
    np.testing.assert_allclose(rec.values[:, :3], vals[:, :3], atol=1e-4)
    np.testing.assert_allclose(rec.values[:, 3:], vals[:, 3:], atol=0.2)  # 3 ms clock shift


def test_garmin_wrong_file_names_missing_columns(tmp_path):
    with pytest.raises(RecordingError, match="not a Garmin gyro export"):
        read_garmin_pair(
            FIX / "garmin-accelerometer_data.csv", FIX / "garmin-accelerometer_data.csv"
        )


def test_csv_seconds_and_units(tmp_path):
    p = tmp_path / "r.csv"
    rows = "".join(f"{i / 100},0,0,1000,1,0,0\n" for i in range(300))
    p.write_text(HEADER + rows)
    rec = read_csv_recording(p, Units(acc="milli_g", gyro="rad/s"))
    assert len(rec) == 300 and rec.duration_s == pytest.approx(2.99)
    np.testing.assert_allclose(rec.values[0], [0, 0, 9.80665, 57.29578, 0, 0], rtol=1e-6)


def test_csv_iso8601_timestamps(tmp_path):
    p = tmp_path / "r.csv"
    ts = pd.date_range("2025-03-24T07:52:19Z", periods=100, freq="20ms")
    body = "".join(f"{t.isoformat()},0,0,9.8,0,0,0\n" for t in ts)
    p.write_text(HEADER + body)
    rec = read_csv_recording(p)
    np.testing.assert_allclose(np.diff(rec.time), 0.02, atol=1e-9)
    assert rec.start == ts[0]


@pytest.mark.parametrize("iso", [False, True])
def test_csv_spaces_around_cells_read_like_none(tmp_path, iso):
    """Spaces after commas (a common hand-written or spreadsheet export) change nothing,
    in numbers, ISO 8601 timestamps and the header."""
    ts = pd.date_range("2025-03-24T07:52:19Z", periods=50, freq="20ms")
    stamps = [t.isoformat() for t in ts] if iso else [f"{i / 50:.2f}" for i in range(50)]
    rows = [[s, "0.5", "-1", "9.81", f"{i}.25", "2", "3"] for i, s in enumerate(stamps)]
    rows[7][4] = "x"  # a non-numeric and an empty cell: those rows are dropped either way
    rows[9][5] = ""
    tight, spaced = tmp_path / "tight.csv", tmp_path / "spaced.csv"
    tight.write_text(HEADER + "".join(",".join(r) + "\n" for r in rows))
    spaced_header = " , ".join(HEADER.strip().split(",")) + "\n"
    spaced.write_text(spaced_header + "".join(", ".join(f" {c} " for c in r) + "\n" for r in rows))
    a, b = read_csv_recording(tight), read_csv_recording(spaced)
    assert len(a) == len(b) > 40
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.start == b.start


def test_csv_unsorted_and_duplicate_timestamps_are_ordered(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text(HEADER + "0.02,2,0,0,0,0,0\n0,0,0,0,0,0,0\n0.02,2,0,0,0,0,0\n0.04,4,0,0,0,0,0\n")
    rec = read_csv_recording(p)
    np.testing.assert_allclose(rec.time, [0, 0.02, 0.04])
    np.testing.assert_allclose(rec.values[:, 0], [0, 2, 4])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (HEADER.encode(), "no samples"),
        (b"time,ax,ay\n1,2,3\n", "missing column"),
        (HEADER.encode() + b"0,a,b,c,d,e,f\n1,a,b,c,d,e,f\n", "no numeric"),
        (HEADER.encode() + b"yesterday,1,2,3,4,5,6\n1,1,2,3,4,5,6\n", "neither a number"),
        (HEADER.encode() + b"0,1,2,3,4,5,6\n", "fewer than two"),
        (b"\x00\x01\x02PK garbage", "missing column|cannot read"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(RecordingError, match=match):
        read_csv_recording(p)


def test_missing_file():
    with pytest.raises(RecordingError, match="not found"):
        read_csv_recording(Path("/nonexistent/x.csv"))


def _garmin_with(tmp_path: Path, column: str, cell: str, row: int = 0) -> Path:
    """The accelerometer fixture with one cell replaced (a hostile upload)."""
    df = pd.read_csv(FIX / "garmin-accelerometer_data.csv", dtype=str)
    df.loc[row, column] = cell
    path = tmp_path / "hostile-accelerometer_data.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("column", "cell", "match"),
    [
        (
            "sample_time_offset",
            "[" * 100_000 + "]" * 100_000,
            "sample_time_offset is not accepted: JSON",
        ),
        ("calibrated_accel_x", "[" * 100_000, "calibrated_accel_x is not accepted: JSON"),
        ("calibrated_accel_y", "5", "every calibrated_accel_y cell must be a JSON list"),
        ("calibrated_accel_z", "{}", "every calibrated_accel_z cell must be a JSON list"),
        ("timestamp_ms", str(10**400), "malformed Garmin row"),
    ],
)
def test_garmin_hostile_cells_are_recording_errors(tmp_path, column, cell, match):
    with pytest.raises(RecordingError, match=match):
        read_garmin_pair(_garmin_with(tmp_path, column, cell), FIX / "garmin-gyroscope_data.csv")


def test_garmin_numbers_past_a_double_are_dropped_as_non_finite_samples(tmp_path):
    clean = read_garmin_pair(
        FIX / "garmin-accelerometer_data.csv", FIX / "garmin-gyroscope_data.csv"
    )
    df = pd.read_csv(FIX / "garmin-accelerometer_data.csv", dtype=str)
    n = len(df.loc[0, "calibrated_accel_x"].split(","))
    huge = "[" + ",".join([str(10**400), "-1e400"] + ["1.0"] * (n - 2)) + "]"
    rec = read_garmin_pair(
        _garmin_with(tmp_path, "calibrated_accel_x", huge), FIX / "garmin-gyroscope_data.csv"
    )
    assert np.isfinite(rec.values).all()
    assert 0 < len(clean) - len(rec) <= 2
