"""Preprocessing on synthetic signals with known answers."""

import numpy as np
import pytest

from har.domain.card import ModelCard, Units
from har.domain.errors import InputError, RecordingError
from har.domain.preprocessing import (
    Preprocessor,
    align_streams,
    make_windows,
    resample_segment,
    split_at_gaps,
    to_canonical,
    unit_factors,
)
from tests.helpers.cards import make_card


def _card(window: int = 200, hop: int = 100, rate: float = 50.0) -> ModelCard:
    return make_card(window=window, hop=hop, sample_rate_hz=rate, scale=(2, 2, 2, 30, 30, 30))


def _sine(rate: float, seconds: float, freq: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * rate)) / rate
    v = np.stack([np.sin(2 * np.pi * freq * t)] * 6, axis=1)
    return t, v


def test_unit_conversion_factors():
    x = np.ones((2, 6))
    out = to_canonical(x, Units(acc="milli_g", gyro="rad/s"))
    np.testing.assert_allclose(out[:, :3], 9.80665e-3)
    np.testing.assert_allclose(out[:, 3:], 180 / np.pi)
    np.testing.assert_allclose(to_canonical(x, Units.parse({"acc": "g"}))[:, :3], 9.80665)
    np.testing.assert_allclose(to_canonical(x, Units()), x)
    np.testing.assert_allclose(unit_factors(Units(gyro="rad/s")), [1] * 3 + [180 / np.pi] * 3)


@pytest.mark.parametrize(
    ("units", "match"),
    [
        ({"acc": "furlong"}, r"unknown accelerometer unit 'furlong'; use one of \['m/s2'"),
        ({"gyro": "rpm"}, r"unknown gyroscope unit 'rpm'; use one of \['deg/s', 'rad/s'\]"),
        ({"acc": "g", "x": 1}, r"unknown keys in units: \['x'\]"),
    ],
)
def test_unknown_units_are_refused(units, match):
    with pytest.raises(InputError, match=match):
        Units.parse(units)


def test_sine_survives_downsampling_100_to_50_hz():
    t, v = _sine(100.0, 20.0, 3.0)  # 3 Hz, well below the new Nyquist (25 Hz)
    y = resample_segment(t, v, 50.0)
    grid = np.arange(len(y)) / 50.0
    expected = np.sin(2 * np.pi * 3.0 * grid)
    assert len(y) == 1000
    # away from the edges the filtered signal matches the true sine closely
    np.testing.assert_allclose(y[50:-50, 0], expected[50:-50], atol=0.02)


def test_downsampling_removes_content_above_new_nyquist():
    t, v = _sine(100.0, 20.0, 40.0)  # 40 Hz would alias to 10 Hz at 50 Hz
    y = resample_segment(t, v, 50.0)
    assert np.abs(y[50:-50]).max() < 0.1  # attenuated, not folded back
    naive = v[::2]  # plain decimation keeps a strong alias
    assert np.abs(naive).max() > 0.5


def test_upsampling_interpolates_onto_the_grid():
    t, v = _sine(25.0, 10.0, 1.0)
    y = resample_segment(t, v, 50.0)
    grid = np.arange(len(y)) / 50.0
    np.testing.assert_allclose(y[:, 0], np.sin(2 * np.pi * grid), atol=0.01)


def test_same_rate_is_identity():
    t, v = _sine(50.0, 10.0, 2.0)
    np.testing.assert_allclose(resample_segment(t, v, 50.0), v, atol=1e-12)


def test_small_gaps_filled_long_gaps_split():
    t = np.arange(1000) / 50.0
    small = np.delete(t, [100, 101])  # 2 missing samples: filled
    assert len(split_at_gaps(small, max_fill=2)) == 1
    large = np.delete(t, [100, 101, 102])  # 3 missing: split
    parts = split_at_gaps(large, max_fill=2)
    assert [(p.start, p.stop) for p in parts] == [(0, 100), (100, 997)]


def test_no_window_spans_a_gap():
    pre = Preprocessor(_card())
    t = np.arange(3000) / 50.0
    keep = (t < 20.0) | (t >= 30.0)  # a 10 s hole
    t, v = t[keep], np.random.default_rng(0).normal(size=(keep.sum(), 6))
    w = pre.windows(t, v)
    starts, ends = w.start_s, w.end_s
    assert not np.any((starts < 20.0) & (ends > 20.0))
    assert set(np.unique(w.segment)) == {0, 1}
    # 20 s segment: windows of 4 s every 2 s -> 9; 30 s segment -> 14
    assert len(w) == 9 + 14
    assert starts[9] == pytest.approx(30.0)


def test_windows_are_hop_apart_and_time_major():
    pre = Preprocessor(_card(window=4, hop=2, rate=1.0))
    t = np.arange(10.0)
    v = np.repeat(np.arange(10.0)[:, None], 6, axis=1) + np.arange(6) / 10
    w = pre.windows(t, v)
    assert w.values.shape == (4, 4, 6)
    np.testing.assert_allclose(w.start_s, [0, 2, 4, 6])
    np.testing.assert_allclose(w.values[1, :, 0], [2, 3, 4, 5])
    np.testing.assert_allclose(w.values[1, 0], 2 + np.arange(6) / 10, rtol=1e-6)


def test_make_windows_empty_for_short_segments():
    from har.domain.preprocessing import Segment

    w = make_windows([Segment(0.0, np.zeros((10, 6)))], 200, 100, 50.0)
    assert len(w) == 0 and w.values.shape == (0, 200, 6)


def test_alignment_pairs_nearest_within_tolerance():
    ta = np.arange(0, 1, 0.01)
    tg = ta + 0.004  # other clock, 4 ms late
    acc = np.stack([ta] * 3, axis=1)
    gyro = np.stack([tg] * 3, axis=1)
    t, v = align_streams(ta, acc, tg, gyro, tolerance_s=0.006)
    assert len(t) == 100
    np.testing.assert_allclose(v[:, 3] - v[:, 0], 0.004)
    t, _ = align_streams(ta, acc, tg + 0.5, gyro, tolerance_s=0.006)  # half overlap
    assert len(t) == 50


def test_scaler_applied():
    pre = Preprocessor(_card())
    x = np.zeros((1, 200, 6), np.float32)
    x[..., 2] = 9.8
    x[..., 3] = 30.0
    s = pre.scale(x)
    np.testing.assert_allclose(s[0, 0], [0, 0, 0, 1, 0, 0], atol=1e-6)


def test_too_short_recording_names_the_problem():
    pre = Preprocessor(_card())
    t = np.arange(150) / 50.0
    with pytest.raises(RecordingError, match=r"too short.*3\.0\d s.*4\.00 s"):
        pre.windows(t, np.zeros((150, 6)))


@pytest.mark.parametrize(
    ("windows", "match"),
    [
        (np.zeros((1, 199, 6)), "shape"),
        (np.zeros((0, 200, 6)), "shape"),
        (np.zeros((200, 6)), "shape"),
        ([[["a"] * 6] * 200], "numbers"),
        (np.full((1, 200, 6), np.nan), "NaN"),
        (np.full((1, 200, 6), np.inf), "NaN or infinity"),
    ],
)
def test_check_windows_rejects_bad_input(windows, match):
    with pytest.raises(InputError, match=match):
        Preprocessor(_card()).check_windows(windows)


def test_check_windows_converts_units():
    x = np.ones((1, 200, 6))
    out = Preprocessor(_card()).check_windows(x, Units(acc="milli_g", gyro="rad/s"))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [9.80665e-3] * 3 + [57.29578] * 3, rtol=1e-5)
