"""Reading device recordings into one time-indexed 6-channel array in canonical units.

Two formats:

* the canonical CSV: header ``timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z``,
  timestamp in seconds (any origin) or ISO 8601, any sample rate, units given by
  the caller (default m/s² and deg/s);
* the Garmin export pair: an accelerometer file and a gyroscope file (.csv or .xlsx)
  whose rows each carry a burst of samples as JSON lists; accelerometer in milli-g,
  gyroscope in deg/s, each on its own clock, about 100 Hz.

Both return a :class:`Recording`; resampling and windowing happen later in
:mod:`har.domain.preprocessing`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import pandas as pd

from har.domain.card import ACC_TO_MS2, CANONICAL_CHANNELS, CANONICAL_UNITS, GYRO_TO_DEG_S, Units
from har.domain.errors import InputError, RecordingError
from har.domain.preprocessing import align_streams, clean_samples, to_canonical
from har.domain.safe_json import loads, signed_infinity

CSV_COLUMNS: tuple[str, ...] = ("timestamp", *CANONICAL_CHANNELS)
GARMIN_TIME_FORMAT = "%m/%d/%Y, %I:%M:%S %p"
#: Units of the Garmin export files.
GARMIN_UNITS = Units(acc="milli_g", gyro="deg/s")
Source = str | Path | bytes | BinaryIO


@dataclass(frozen=True)
class Recording:
    """Samples of one session.

    Attributes:
        time: ``(n,)`` float64 seconds from the first sample, increasing.
        values: ``(n, 6)`` float64 in m/s² (acc) and deg/s (gyro).
        start: wall-clock time of the first sample when the file says it, else ``None``.
    """

    time: np.ndarray
    values: np.ndarray
    start: pd.Timestamp | None = None

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.time[-1] - self.time[0]) if len(self) else 0.0

    def to_csv(self, path: str | Path, *, decimals: int = 6) -> None:
        """Write the canonical CSV (timestamp in seconds from the first sample)."""
        df = pd.DataFrame(self.values, columns=list(CANONICAL_CHANNELS))
        df.insert(0, "timestamp", self.time)
        df.to_csv(path, index=False, float_format=f"%.{decimals}f")


def _name(source: Source) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return getattr(source, "name", None) or "upload"


def _raw_bytes(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | Path):
        p = Path(source)
        if not p.is_file():
            raise RecordingError(f"recording not found: {p}")
        return p.read_bytes()
    return source.read()


def _table(source: Source, *, text: bool = True) -> pd.DataFrame:
    """CSV or Excel (by content: xlsx files are zip archives) into a DataFrame.

    ``text=True`` keeps every cell as a string (Garmin's JSON lists); ``text=False``
    lets pandas' C parser read numbers directly, much faster on large numeric recordings
    (columns that are not all numbers stay text).

    Spaces around a cell are ignored either way: with ``text=False`` the C parser reads
    ``" 1.5 "`` as a number, and ``pd.to_numeric`` / ``pd.to_datetime`` ignore them in
    a text column, so ``skipinitialspace`` (a noticeable part of the read) is only
    needed for text.
    """
    dtype = str if text else None
    data = _raw_bytes(source)
    name = _name(source)
    if not data.strip():
        raise RecordingError(f"{name}: the file is empty")
    try:
        if data[:2] == b"PK":
            return pd.read_excel(io.BytesIO(data), dtype=dtype, engine="openpyxl")
        return pd.read_csv(io.BytesIO(data), dtype=dtype, skipinitialspace=text)
    except Exception:  # pandas raises many types (and library messages) for unreadable input
        raise RecordingError(
            f"{name}: cannot read the file as CSV (comma-separated, UTF-8, a header row) or .xlsx"
        ) from None


def _timestamps_to_seconds(col: pd.Series, name: str) -> tuple[np.ndarray, pd.Timestamp | None]:
    """Numeric seconds, or ISO 8601 date-times converted to seconds since the epoch."""
    num = pd.to_numeric(col, errors="coerce")
    if num.notna().all():
        return num.to_numpy(np.float64), None
    try:
        dt = pd.to_datetime(col, format="ISO8601", utc=True)
    except (ValueError, TypeError):
        bad = col[num.isna()].iloc[0]
        raise RecordingError(
            f"{name}: timestamp {bad!r} is neither a number of seconds nor ISO 8601"
        ) from None
    ns = _epoch_ns(dt)
    return (ns - ns[0]) / 1e9, dt.iloc[0]


def _epoch_ns(dt: pd.Series) -> np.ndarray:
    """Integer nanoseconds since the Unix epoch, whatever the series' own time unit."""
    unit_free = dt.dt.tz_convert(None) if dt.dt.tz is not None else dt
    return cast(np.ndarray, unit_free.astype("datetime64[ns]").astype("int64").to_numpy())


def read_csv_recording(source: Source, units: Units = CANONICAL_UNITS) -> Recording:
    """Read a canonical CSV recording in ``units`` and convert it to canonical units.

    Raises:
        RecordingError: unreadable, empty, missing columns, non-numeric values.
    """
    name = _name(source)
    df = _table(source, text=False)
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise RecordingError(
            f"{name}: missing column(s) {missing}; the header must be {','.join(CSV_COLUMNS)}"
        )
    df = df.dropna(how="all")
    if df.empty:
        raise RecordingError(f"{name}: the file has a header but no samples")
    vals = df[list(CANONICAL_CHANNELS)].apply(pd.to_numeric, errors="coerce")
    if vals.isna().all(axis=None):
        raise RecordingError(f"{name}: no numeric sensor values")
    bad_rows = vals.isna().any(axis=1)
    if bad_rows.mean() > 0.5:
        first = int(np.flatnonzero(bad_rows.to_numpy())[0])
        raise RecordingError(
            f"{name}: most rows have non-numeric sensor values (first at data row {first + 1})"
        )
    t, start = _timestamps_to_seconds(df["timestamp"], name)
    values = to_canonical(vals.to_numpy(np.float64), units)
    return _finish(t, values, start, name)


def _finish(t: np.ndarray, values: np.ndarray, start: pd.Timestamp | None, name: str) -> Recording:
    """The :class:`Recording` of cleaned samples (:func:`~har.domain.preprocessing.clean_samples`)."""
    t, values = clean_samples(t, values)
    if t.size < 2:
        raise RecordingError(f"{name}: fewer than two valid samples")
    return Recording(t - t[0], values, start)


def _garmin_stream(source: Source, kind: str) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """One Garmin file → (epoch nanoseconds ``(n,)`` int64, values ``(n, 3)``, first time)."""
    name = _name(source)
    df = _table(source)
    df.columns = [str(c).strip() for c in df.columns]
    cols = [f"calibrated_{kind}_{a}" for a in "xyz"]
    need = ["timestamp", "timestamp_ms", "sample_time_offset", *cols]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RecordingError(f"{name}: not a Garmin {kind} export, missing column(s) {missing}")
    df = df.dropna(subset=need)
    if df.empty:
        raise RecordingError(f"{name}: the file has a header but no samples")
    try:
        base = pd.to_datetime(df["timestamp"], format=GARMIN_TIME_FORMAT)
        ms = pd.to_numeric(df["timestamp_ms"]).to_numpy(np.float64)
    except (ValueError, TypeError, OverflowError):  # OverflowError: an integer past a double
        raise RecordingError(
            f"{name}: malformed Garmin row (timestamps as {GARMIN_TIME_FORMAT!r}, "
            "timestamp_ms a number, the other cells JSON lists)"
        ) from None
    offsets = _json_lists(df["sample_time_offset"], name, "sample_time_offset")
    axes = [_json_lists(df[c], name, c) for c in cols]
    lengths = np.fromiter((len(o) for o in offsets), np.int64, len(offsets))
    for c, ax in zip(cols, axes, strict=True):
        if any(len(a) != n for a, n in zip(ax, lengths, strict=True)):
            raise RecordingError(f"{name}: {c} and sample_time_offset differ in length in a row")
    row_ns = _epoch_ns(base) + np.round(ms * 1e6).astype(np.int64)
    try:
        off = np.asarray(np.concatenate(offsets), dtype=np.float64) / 1000.0
        vals = np.stack([np.asarray(np.concatenate(ax), dtype=np.float64) for ax in axes], axis=1)
    except (ValueError, TypeError):
        raise RecordingError(f"{name}: non-numeric values in a burst") from None
    t_ns = np.repeat(row_ns, lengths) + np.round(off * 1e9).astype(np.int64)
    return t_ns, vals, base.iloc[0]


def _json_lists(cells: pd.Series, name: str, column: str) -> list[list[Any]]:
    """Every row's JSON list of a Garmin column, parsed in one call (``"[[...],[...]]"``).

    :func:`har.domain.safe_json.loads`: nesting no parser here can follow is a
    :class:`RecordingError` naming the column, never a ``RecursionError``; a number past
    a double is infinite (its sample dropped as NaN ones are), never an ``OverflowError``.
    """
    try:
        rows = loads("[" + ",".join(cells) + "]", f"{name}: column {column}", huge=signed_infinity)
    except InputError as exc:
        raise RecordingError(str(exc)) from None
    if not all(type(row) is list for row in rows):
        raise RecordingError(f"{name}: every {column} cell must be a JSON list of numbers")
    return cast(list[list[Any]], rows)


def read_garmin_pair(
    accelerometer: Source, gyroscope: Source, *, tolerance_s: float = 0.02
) -> Recording:
    """Read a Garmin accelerometer + gyroscope export pair (milli-g, deg/s) and align them.

    Each accelerometer sample is paired with the nearest gyroscope sample within
    ``tolerance_s``; unpaired samples are dropped (they become gaps).
    """
    ta_ns, acc, start = _garmin_stream(accelerometer, "accel")
    tg_ns, gyro, _ = _garmin_stream(gyroscope, "gyro")
    origin = min(ta_ns.min(), tg_ns.min())  # seconds from here keep sub-µs precision
    ta, tg = (ta_ns - origin) / 1e9, (tg_ns - origin) / 1e9
    t, values = align_streams(ta, acc, tg, gyro, tolerance_s)
    if t.size < 2:
        raise RecordingError(
            "the accelerometer and gyroscope files do not overlap in time "
            f"(no samples within {tolerance_s * 1000:.0f} ms of each other)"
        )
    values = to_canonical(values, GARMIN_UNITS)
    return _finish(t, values, start, _name(accelerometer))


def write_garmin_pair(
    rec: Recording, acc_path: str | Path, gyro_path: str | Path, *, burst: int = 25
) -> None:
    """Write a recording as a Garmin export pair (for fixtures and demo data).

    Values are written in :data:`GARMIN_UNITS` (milli-g, deg/s), bursts of
    ``burst`` samples per row; the gyroscope clock is shifted by 3 ms to mimic the
    device's separate clocks.
    """
    start = rec.start if rec.start is not None else pd.Timestamp("2025-03-24 07:52:19")
    start = start.tz_localize(None) if start.tzinfo else start
    acc = rec.values[:, :3] / ACC_TO_MS2[GARMIN_UNITS.acc]
    gyro = rec.values[:, 3:] / GYRO_TO_DEG_S[GARMIN_UNITS.gyro]
    for path, vals, shift, kind in (
        (acc_path, acc, 0.0, "accel"),
        (gyro_path, gyro, 0.003, "gyro"),
    ):
        t = rec.time + shift
        rows = []
        for s in range(0, len(t), burst):
            tt, vv = t[s : s + burst], vals[s : s + burst]
            head = start + pd.to_timedelta(tt[0], unit="s")
            ms = head.microsecond // 1000
            head0 = head.replace(microsecond=0, nanosecond=0)
            base_s = (head0 - start).total_seconds() + ms / 1000
            offs = np.round((tt - base_s) * 1000).astype(int)
            rows.append(
                {
                    "timestamp": head0.strftime(GARMIN_TIME_FORMAT),
                    "timestamp_ms": ms,
                    "sample_time_offset": json.dumps([str(o) for o in offs]),
                    **{
                        f"calibrated_{kind}_{a}": json.dumps([round(float(x), 3) for x in vv[:, i]])
                        for i, a in enumerate("xyz")
                    },
                }
            )
        pd.DataFrame(rows).to_csv(path, index=False)
