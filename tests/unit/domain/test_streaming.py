"""StreamWindower: a stream pushed in chunks gives the windows the offline path cuts."""

from __future__ import annotations

import numpy as np
import pytest

from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor, Windows, make_windows
from har.domain.streaming import FILTER_REACH, StreamWindower
from tests.helpers.cards import make_card
from tests.helpers.signals import synthetic_recording

CARD = make_card(["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"], scale=[3.0] * 6)
CHUNKS = [1, 7, 64, 333, None]  # None: the whole recording in one chunk

# Edge samples of segments, input faster than the model (see test_above_model_rate):
# measured at most 3e-4 of a channel's peak-to-peak range (10 seeds, sines/ramps/steps).
EDGE_TOL = 2e-3


recording = synthetic_recording


def stream(
    t: np.ndarray, v: np.ndarray, chunk: int | None, card: ModelCard = CARD
) -> tuple[Windows, int]:
    """Push ``t``/``v`` in chunks, flush; all windows and the largest buffer seen."""
    w = StreamWindower(card)
    step = chunk or len(t)
    parts, most = [], 0
    for i in range(0, len(t), step):
        parts.append(w.push(t[i : i + step], v[i : i + step]))
        most = max(most, w.buffered)
    parts.append(w.flush())
    parts = [p for p in parts if len(p)]
    got = Windows(
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.start_s for p in parts]),
        np.concatenate([p.segment for p in parts]),
        card.sample_rate_hz,
    )
    return got, most


def edge_mask(t: np.ndarray, v: np.ndarray, windows: Windows, card: ModelCard = CARD):
    """``(N, window)`` True where a window's sample is within FILTER_REACH grid samples of
    its gap-free segment's first or last sample (where the anti-alias filter sees an edge)."""
    segs = Preprocessor(card).segments(t, v)
    mask = np.zeros(windows.values.shape[:2], bool)
    for j, (s, k) in enumerate(zip(windows.start_s, windows.segment, strict=True)):
        first = round((s - segs[k].start_s) * card.sample_rate_hz)
        idx = first + np.arange(card.window)
        mask[j] = (idx < FILTER_REACH) | (idx >= segs[k].values.shape[0] - FILTER_REACH)
    return mask


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    "rec",
    [
        pytest.param({"rate_hz": 50}, id="50Hz-grid"),
        pytest.param({"rate_hz": 50, "jitter_s": 0.003}, id="50Hz-jitter"),
        pytest.param({"rate_hz": 50, "gaps": ((20.0, 22.5),)}, id="50Hz-gap"),
        pytest.param({"rate_hz": 25}, id="25Hz-upsampled"),
    ],
)
def test_at_or_below_model_rate_is_exact(rec: dict, chunk: int | None) -> None:
    t, v = recording(seconds=60, **rec)
    want = Preprocessor(CARD).windows(t, v)
    got, _ = stream(t, v, chunk)
    assert len(got) == len(want) >= 20
    np.testing.assert_array_equal(got.start_s, want.start_s)
    np.testing.assert_array_equal(got.segment, want.segment)
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-5)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    "rec",
    [
        pytest.param({"rate_hz": 100}, id="100Hz"),
        pytest.param({"rate_hz": 100, "jitter_s": 0.002, "gaps": ((20.0, 23.0),)}, id="100Hz-gap"),
        pytest.param({"rate_hz": 200}, id="200Hz"),
    ],
)
def test_above_model_rate(rec: dict, chunk: int | None) -> None:
    """Input at k >= 2 times the model's rate is low-pass filtered before decimation.

    Away from segment edges the stream holds back FILTER_REACH samples of look-ahead and
    look-behind, so its samples are the offline ones. At a segment's first and last
    FILTER_REACH samples, scipy's filter extends the signal along the line through the
    segment's first and last sample; offline knows where the segment ends, a stream
    cannot, so these samples may differ, by at most EDGE_TOL of the channel's range
    (7x the worst case measured, and far below the sensor noise in the data).
    """
    t, v = recording(seconds=60, **rec)
    want = Preprocessor(CARD).windows(t, v)
    got, _ = stream(t, v, chunk)
    assert len(got) == len(want) >= 20
    np.testing.assert_array_equal(got.start_s, want.start_s)
    np.testing.assert_array_equal(got.segment, want.segment)
    edge = edge_mask(t, v, want)
    assert edge.any() and not edge.all()
    np.testing.assert_allclose(got.values[~edge], want.values[~edge], rtol=0, atol=1e-5)
    tol = EDGE_TOL * np.ptp(v, axis=0)
    assert (np.abs(got.values - want.values) <= tol).all()


@pytest.mark.parametrize("chunk", [1, 64, None])
@pytest.mark.parametrize("rate_hz", [50, 100])
def test_unix_timestamps(rate_hz: int, chunk: int | None) -> None:
    """Unix-time stamps (~1.7e9 s): the same windows at the same starts.

    float64 resolves such times to ~2.4e-7 s. The offline path puts its grid at
    ``t0 + i / rate`` in absolute time, the stream in seconds from the segment's start,
    so a grid point can be a few ulps apart: values agree to the signal's slope times
    that, not to 1e-5.
    """
    t, v = recording(rate_hz, 60, t0=1.7e9)
    want = Preprocessor(CARD).windows(t, v)
    got, _ = stream(t, v, chunk)
    assert len(got) == len(want)
    np.testing.assert_array_equal(got.start_s, want.start_s)
    edge = (
        edge_mask(t, v, want)
        if rate_hz > CARD.sample_rate_hz
        else np.zeros_like(want.values[..., 0], bool)
    )
    slope = np.abs(np.diff(v, axis=0) / np.diff(t)[:, None]).max()
    atol = slope * 8 * np.spacing(1.7e9)
    np.testing.assert_allclose(got.values[~edge], want.values[~edge], rtol=0, atol=atol)
    assert (np.abs(got.values - want.values) <= EDGE_TOL * np.ptp(v, axis=0) + atol).all()


@pytest.mark.parametrize(("window", "hop"), [(200, 100), (40, 15)])
def test_each_window_comes_out_with_its_last_sample(window: int, hop: int) -> None:
    """At the model's rate a window is emitted by the push that brings its last sample
    (no look-ahead), also with Unix-time stamps, where window starts like t0 + 0.3 s
    are not representable and round."""
    card = CARD.model_copy(update={"window": window, "hop": hop})
    t, v = recording(50, 30, t0=1.7e9)
    w = StreamWindower(card)
    emitted = 0
    for n in range(1, len(t) + 1):
        emitted += len(w.push(t[n - 1 : n], v[n - 1 : n]))
        if n >= window and (n - window) % hop == 0:
            segs = Preprocessor(card).segments(t[:n], v[:n])
            assert emitted == len(make_windows(segs, window, hop, 50)), n
    assert emitted > 10


def test_gap_splits_windows_and_short_gap_does_not() -> None:
    t, v = recording(50, 40, gaps=((12.0, 14.0),))
    got, _ = stream(t, v, 7)
    gap_from, gap_to = 12.0, 14.0  # first missing sample, first sample after (from t[0])
    assert ((got.end_s <= gap_from + 1e-9) | (got.start_s >= gap_to - 1e-9)).all()
    assert set(got.segment.tolist()) == {0, 1}
    assert got.start_s[got.segment == 1][0] == pytest.approx(gap_to)

    # two missing samples (max_fill=2) are interpolated: windows run across them
    t2, v2 = recording(50, 40, gaps=((12.0, 12.03),))
    got2, _ = stream(t2, v2, 7)
    assert set(got2.segment.tolist()) == {0}
    assert len(got2) == len(Preprocessor(CARD).windows(t2, v2)) == (40 * 50 - 200) // 100 + 1


def test_memory_stays_bounded_over_a_long_stream() -> None:
    minutes, rate, chunk = 30, 100, 50
    t, v = recording(rate, minutes * 60, seed=3)
    w = StreamWindower(CARD)
    n_windows, most, last_start = 0, 0, -1.0
    for i in range(0, len(t), chunk):
        out = w.push(t[i : i + chunk], v[i : i + chunk])
        most = max(most, w.buffered)
        if len(out):
            assert out.start_s[0] > last_start
            last_start = float(out.start_s[-1])
            n_windows += len(out)
    n_windows += len(w.flush())
    k = rate // CARD.sample_rate_hz
    assert n_windows == (minutes * 60 * CARD.sample_rate_hz - CARD.window) // CARD.hop + 1
    # a window plus the filter's reach on both sides, at the input rate, plus one chunk
    assert most <= (CARD.window + 2 * FILTER_REACH + 2) * k + chunk < len(t) / 300


def test_bad_chunks_raise_input_error_and_leave_the_stream_usable() -> None:
    t, v = recording(50, 10)
    w = StreamWindower(CARD)
    assert len(w.push(t[:150], v[:150])) == 0
    with pytest.raises(InputError, match="timestamps must increase"):
        w.push(t[140:160], v[140:160])  # starts before the previous chunk's end
    dup = t[150:160].copy()
    dup[3] = dup[2]
    with pytest.raises(InputError, match="timestamps must increase: sample 3"):
        w.push(dup, v[150:160])
    bad = v[150:160].copy()
    bad[4, 5] = np.nan
    with pytest.raises(InputError, match="sample 4 has NaN or infinity in channel gyro_z"):
        w.push(t[150:160], bad)
    with pytest.raises(InputError, match="n x 6 values"):
        w.push(t[150:160], v[150:160, :5])
    with pytest.raises(InputError, match="about 5000 windows' worth; at most 4096"):
        w.push(t[150] + np.array([0.0, 10_000.0]), v[150:152])  # ms sent as s
    assert w.buffered == 150
    got = w.push(t[150:], v[150:])
    want = Preprocessor(CARD).windows(t, v)
    np.testing.assert_array_equal(got.start_s, want.start_s)
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-5)
