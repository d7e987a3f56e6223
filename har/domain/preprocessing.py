"""The one preprocessing path: units, alignment, resampling, gaps, windows, scaling.

Training, offline scoring (``python -m har predict``), the HTTP endpoints and the
gRPC servicer all call :class:`Preprocessor`; the window geometry, sample rate
and scaler come from the model card, never from constants here.

Array conventions: a recording is ``time`` (seconds, float64, shape ``(n,)``)
plus ``values`` (shape ``(n, 6)``, channels ``acc_x acc_y acc_z gyro_x gyro_y
gyro_z``); canonical units are m/s² and deg/s. Windows are ``(N, window, 6)``
float32, time-major.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from har.domain.card import ACC_TO_MS2, CANONICAL_UNITS, GYRO_TO_DEG_S, ModelCard, Scaler, Units
from har.domain.errors import InputError, RecordingError


def unit_factors(units: Units) -> np.ndarray:
    """Per-channel factors that turn ``units`` into canonical units, shape ``(6,)`` float64."""
    a, g = ACC_TO_MS2[units.acc], GYRO_TO_DEG_S[units.gyro]
    return np.array([a, a, a, g, g, g], dtype=np.float64)


def to_canonical(values: np.ndarray, units: Units) -> np.ndarray:
    """Convert ``(..., 6)`` samples from ``units`` to m/s² and deg/s (returns a new array)."""
    if units.is_canonical:
        return np.array(values, copy=True)
    f = unit_factors(units)
    return cast(
        np.ndarray, values * f.astype(values.dtype if values.dtype.kind == "f" else np.float64)
    )


def clean_samples(time: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop samples with a NaN/infinite time or value, sort by time, keep the first of
    equal timestamps. ``time`` ``(n,)`` and ``values`` ``(n, 6)`` in, float64 out.

    The readers in :mod:`har.domain.recordings` call it once; :class:`Preprocessor` then
    expects what it returns (finite, strictly increasing times).
    """
    time = np.asarray(time, np.float64)
    values = np.asarray(values, np.float64)
    finite = np.isfinite(time) & np.isfinite(values).all(axis=1)
    time, values = time[finite], values[finite]
    order = np.argsort(time, kind="stable")
    time, values = time[order], values[order]
    keep = np.concatenate([[True], np.diff(time) > 0])
    return time[keep], values[keep]


def align_streams(
    acc_time: np.ndarray,
    acc: np.ndarray,
    gyro_time: np.ndarray,
    gyro: np.ndarray,
    tolerance_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair each accelerometer sample with the nearest gyroscope sample in time.

    Args:
        acc_time, gyro_time: sample times in seconds on a common clock, shape ``(n,)``/``(m,)``.
        acc, gyro: ``(n, 3)`` and ``(m, 3)`` samples.
        tolerance_s: accelerometer samples with no gyroscope sample this close are dropped
            (they become gaps, which :func:`split_at_gaps` handles).

    Returns:
        ``(time, values)`` on the accelerometer's clock, values ``(k, 6)``.
    """
    a = pd.DataFrame({"t": np.asarray(acc_time, np.float64)})
    a[["ax", "ay", "az"]] = np.asarray(acc, np.float64)
    g = pd.DataFrame({"t": np.asarray(gyro_time, np.float64)})
    g[["gx", "gy", "gz"]] = np.asarray(gyro, np.float64)
    a = a.sort_values("t", kind="stable").drop_duplicates("t")
    g = g.sort_values("t", kind="stable").drop_duplicates("t")
    m = pd.merge_asof(a, g, on="t", direction="nearest", tolerance=tolerance_s).dropna()
    return m["t"].to_numpy(), m[["ax", "ay", "az", "gx", "gy", "gz"]].to_numpy()


def nominal_period(time: np.ndarray) -> float:
    """Median spacing of sample times (seconds)."""
    d = np.diff(time)
    d = d[d > 0]
    if d.size == 0:
        raise RecordingError("recording has fewer than two distinct timestamps")
    return float(np.median(d))


def split_at_gaps(time: np.ndarray, max_fill: int, max_period: float | None = None) -> list[slice]:
    """Slices of ``time`` with no gap longer than ``max_fill`` missing samples.

    A gap of ``k`` missing samples shows as a step of ``(k + 1)`` periods; steps up to
    ``max_fill + 1`` periods (plus half a period of jitter) are kept and later filled by
    interpolation, longer ones split the recording. The period is the recording's
    nominal period (median step), but at most ``max_period`` (seconds; the model's
    sample period): so a step longer than ``(max_fill + 1.5) * max_period`` splits
    whatever the timestamps' spacing, and sparse rows (two rows an hour apart) are
    never interpolated into windows of invented data. Nothing is allocated per
    second of a gap.
    """
    period = nominal_period(time)
    if max_period is not None:
        period = min(period, max_period)
    limit = (max_fill + 1.5) * period
    breaks = np.flatnonzero(np.diff(time) > limit) + 1
    bounds = np.concatenate([[0], breaks, [len(time)]])
    return [slice(int(s), int(e)) for s, e in zip(bounds[:-1], bounds[1:], strict=True) if e > s]


def resampled_size(time: np.ndarray, rate_hz: float) -> int:
    """Samples :func:`resample_segment` allocates for ``time`` (its finest grid), computed
    without allocating: ``(n_out - 1) * k + 1`` with ``k`` the decimation factor."""
    if len(time) < 2:
        return 1
    n_out = int(math.floor(float(time[-1] - time[0]) * rate_hz + 1e-3)) + 1
    k = int(round(1.0 / nominal_period(time) / rate_hz))
    return (n_out - 1) * k + 1 if k >= 2 else n_out


def resample_segment(time: np.ndarray, values: np.ndarray, rate_hz: float) -> np.ndarray:
    """Resample one gap-free segment onto the grid ``time[0] + i / rate_hz``.

    Gaps of a few samples are filled by linear interpolation. When the input is
    faster than ``rate_hz`` it is first interpolated onto a uniform grid at an integer
    multiple ``k`` of the target rate and then decimated with a polyphase FIR
    low-pass (anti-aliasing), so content above the new Nyquist frequency is removed
    rather than folded back.

    Returns:
        ``(n_out, channels)`` float64 samples.
    """
    duration = float(time[-1] - time[0])
    n_out = (
        int(math.floor(duration * rate_hz + 1e-3)) + 1
    )  # 1e-3: Unix-time stamps round to ~1e-5 samples
    if len(time) < 2:
        return values[:1].astype(np.float64)
    rate_in = 1.0 / nominal_period(time)
    k = int(round(rate_in / rate_hz))
    if k >= 2:
        fine = time[0] + np.arange((n_out - 1) * k + 1) / (rate_hz * k)
        u = _interp(fine, time, values)
        # imported here: 0.7 s at start that the model worker and supervisor never need
        from scipy.signal import resample_poly

        y = resample_poly(u, 1, k, axis=0, padtype="line")
        return cast(np.ndarray, y[:n_out])
    grid = time[0] + np.arange(n_out) / rate_hz
    return _interp(grid, time, values)


def _interp(grid: np.ndarray, time: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.empty((len(grid), values.shape[1]), np.float64)
    for c in range(values.shape[1]):  # per channel (6), not per sample
        out[:, c] = np.interp(grid, time, values[:, c])
    return out


@dataclass(frozen=True)
class Segment:
    """A gap-free stretch of a recording at the model's rate.

    Attributes:
        start_s: time of the first sample, seconds from the recording's first sample.
        values: ``(n, 6)`` samples in canonical units.
    """

    start_s: float
    values: np.ndarray


@dataclass(frozen=True)
class Windows:
    """Windows cut from a recording.

    Attributes:
        values: ``(N, window, 6)`` float32 in canonical units (not scaled).
        start_s: ``(N,)`` window start, seconds from the recording's first sample.
        segment: ``(N,)`` index of the gap-free segment each window came from.
        sample_rate_hz: rate of the samples in ``values``.
    """

    values: np.ndarray
    start_s: np.ndarray
    segment: np.ndarray
    sample_rate_hz: float

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def end_s(self) -> np.ndarray:
        return cast(np.ndarray, self.start_s + self.values.shape[1] / self.sample_rate_hz)


def make_windows(segments: list[Segment], window: int, hop: int, rate_hz: float) -> Windows:
    """Cut ``window``-sample windows every ``hop`` samples inside each segment (never across)."""
    vals, starts, segs = [], [], []
    for i, seg in enumerate(segments):
        n = seg.values.shape[0]
        if n < window:
            continue
        v = np.lib.stride_tricks.sliding_window_view(seg.values, window, axis=0)[::hop]
        with np.errstate(over="ignore"):  # inf in float32: Scorer.score refuses them
            vals.append(np.ascontiguousarray(v.transpose(0, 2, 1), dtype=np.float32))
        offs = np.arange(v.shape[0]) * hop
        starts.append(seg.start_s + offs / rate_hz)
        segs.append(np.full(v.shape[0], i, np.int64))
    if not vals:
        return Windows(
            np.empty((0, window, 6), np.float32), np.empty(0), np.empty(0, np.int64), rate_hz
        )
    return Windows(np.concatenate(vals), np.concatenate(starts), np.concatenate(segs), rate_hz)


def scale(windows: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Z-score ``(..., 6)`` canonical samples with the card's scaler: a new float32 array
    (one allocation; values too large for float32 become infinity, for the caller to refuse)."""
    mean, sd = scaler.arrays()
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.subtract(windows, mean, dtype=np.float32)
        np.divide(scaled, sd, out=scaled)
    return cast(np.ndarray, scaled)


#: What :func:`check_finite` says of values that overflow in the model's input.
SCALED = "after unit conversion and scaling"


def check_finite(windows: np.ndarray, channels: Sequence[str], when: str) -> None:
    """Raise :class:`InputError` naming the first NaN/infinite value of ``(N, window, 6)``
    ``windows`` (values too large for float32 overflow to infinity, e.g. after a unit
    conversion or scaling)."""
    if not np.isfinite(windows).all():
        w, i, c = (int(x) for x in np.argwhere(~np.isfinite(windows))[0])
        raise InputError(
            f"values out of range {when} (first at window {w}, sample {i}, channel "
            f"{channels[c]}): sensor values must stay finite in float32"
        )


class Preprocessor:
    """The card-driven preprocessing used by training, scoring, HTTP and gRPC."""

    def __init__(self, card: ModelCard, *, max_fill: int = 2, max_samples: int = 4_000_000) -> None:
        self.card = card
        self.max_fill = max_fill
        #: most samples the resampler may allocate for one recording (its finest grids)
        self.max_samples = max_samples

    def segments(self, time: np.ndarray, values: np.ndarray) -> list[Segment]:
        """Split a canonical-unit recording at gaps and resample each part to the card's rate.

        Args:
            time: ``(n,)`` seconds (any origin), finite and strictly increasing, as a
                :class:`~har.domain.recordings.Recording` holds them (see :func:`clean_samples`).
            values: ``(n, 6)`` finite samples in canonical units.
        """
        time = np.asarray(time, np.float64)
        values = np.asarray(values, np.float64)
        if time.size < 2:
            raise RecordingError("recording has fewer than two valid samples")
        origin = time[0]
        rate = self.card.sample_rate_hz
        parts = [
            sl for sl in split_at_gaps(time, self.max_fill, 1.0 / rate) if sl.stop - sl.start > 1
        ]
        planned = sum(resampled_size(time[sl], rate) for sl in parts)
        if planned > self.max_samples:
            raise InputError(
                f"recording too large: resampling it to {rate:g} Hz needs {planned} samples, "
                f"at most {self.max_samples} are accepted per recording (HAR_MAX_RESAMPLED_SAMPLES); "
                "split it, or check that its timestamps are in seconds"
            )
        out = []
        for sl in parts:
            t, v = time[sl], values[sl]
            out.append(
                Segment(float(t[0] - origin), resample_segment(t, v, self.card.sample_rate_hz))
            )
        return out

    def windows(self, time: np.ndarray, values: np.ndarray) -> Windows:
        """Windows (canonical units, unscaled) of a recording; raises if there are none."""
        segs = self.segments(time, values)
        w = make_windows(segs, self.card.window, self.card.hop, self.card.sample_rate_hz)
        if len(w) == 0:
            longest = max((s.values.shape[0] for s in segs), default=0) / self.card.sample_rate_hz
            gap = (self.max_fill + 1.5) / self.card.sample_rate_hz
            raise RecordingError(
                f"recording too short (no window): its longest stretch without a gap is "
                f"{longest:.2f} s, a window needs {self.card.window_seconds:.2f} s "
                f"({self.card.window} samples at {self.card.sample_rate_hz:g} Hz); a step "
                f"between samples longer than {gap:.3g} s counts as a gap"
            )
        return w

    def scale(self, windows: np.ndarray) -> np.ndarray:
        """Scaled float32 model input from canonical windows ``(N, window, 6)``."""
        return scale(windows, self.card.scaler)

    def check_shape(self, windows: np.ndarray) -> None:
        """Raise :class:`InputError` unless ``windows`` is ``(N, window, 6)`` with ``N >= 1``."""
        want = (self.card.window, self.card.n_channels)
        if windows.ndim != 3 or windows.shape[1:] != want or windows.shape[0] == 0:
            raise InputError(
                f"windows must have shape (N, {want[0]}, {want[1]}) with N >= 1 "
                f"(time-major: {self.card.window} samples of {self.card.channels}), got "
                f"{tuple(windows.shape)}"
            )

    def check_windows(self, windows: object, units: Units = CANONICAL_UNITS) -> np.ndarray:
        """Windows read from a file (evaluation or reference data), validated and in canonical
        units: ``(N, window, 6)`` float32.

        The edge for arrays that do not come through a transport (any real dtype, or nested
        lists): cast once, shape checked, one finiteness scan on the happy path.

        Raises:
            InputError: wrong shape, non-numbers, NaN or infinity (as given, or after
                conversion from ``units``).
        """
        try:
            arr = np.asarray(windows, dtype=np.float32)
        except (ValueError, TypeError, OverflowError):
            raise InputError(
                f"windows must be an array of numbers shaped (N, {self.card.window}, "
                f"{self.card.n_channels}), every window the same shape"
            ) from None
        self.check_shape(arr)
        canonical = self._canonical(arr, units)
        if not np.isfinite(canonical).all():
            self._refuse_non_finite(arr, canonical, units)
        return canonical

    def model_input(self, windows: np.ndarray, units: Units) -> tuple[np.ndarray, np.ndarray]:
        """A client's windows as ``(canonical, scaled)``, both ``(N, window, 6)`` float32.

        Args:
            windows: float32, shape already checked (:meth:`check_shape`), in ``units``:
                as a transport's edge decodes them (``har.http.request_body``,
                ``har.grpc.service``, ``har.core.open_inference``); not cast again here.
            units: the units the client declared.

        One finiteness scan (of ``scaled``) on the happy path: a NaN or infinity sent, or
        produced by the unit conversion, survives the scaling, so only a refusal looks
        further, to name the first stage where a value stopped being finite.

        Raises:
            InputError: NaN or infinity as sent, after the unit conversion, or after scaling.
        """
        canonical = self._canonical(windows, units)
        scaled = self.scale(canonical)
        if not np.isfinite(scaled).all():
            self._refuse_non_finite(windows, canonical, units)
            check_finite(scaled, self.card.channels, SCALED)
        return canonical, scaled

    def _canonical(self, arr: np.ndarray, units: Units) -> np.ndarray:
        """``arr`` itself in canonical units, else converted (a new float32 array)."""
        if units.is_canonical:
            return arr
        with np.errstate(over="ignore"):
            return arr * unit_factors(units).astype(np.float32)

    def _refuse_non_finite(self, arr: np.ndarray, canonical: np.ndarray, units: Units) -> None:
        """Raise for the first NaN/infinity of the windows as sent, else of ``canonical``
        (after the conversion from ``units``); return when both are finite."""
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise InputError(
                f"windows contain NaN or infinity (first at window {bad[0]}, sample {bad[1]}, "
                f"channel {self.card.channels[bad[2]]})"
            )
        if canonical is not arr:
            check_finite(
                canonical, self.card.channels, f"after conversion from {units.acc}/{units.gyro}"
            )
