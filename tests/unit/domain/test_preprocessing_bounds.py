"""Bounded work for any recording or stream (issue 10, item 4): gaps split before the
resampler allocates anything, a cap on what it may allocate, non-finite values refused."""

from __future__ import annotations

import asyncio
import tracemalloc

import numpy as np
import pytest

from har.core.scorer import Scorer
from har.domain.card import Units
from har.domain.errors import InputError, RecordingError
from har.domain.preprocessing import Preprocessor, resample_segment, resampled_size, split_at_gaps
from har.domain.streaming import StreamWindower
from tests.helpers.cards import make_card

CARD = make_card(["a", "b"], name="t", scale=(2, 2, 2, 30, 30, 30))


def _rows(times: list[float]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, np.float64)
    return t, np.tile([0.1, 0.1, 9.81, 0.1, 0.1, 0.1], (t.size, 1))


@pytest.mark.parametrize("span", [4000.0, 1e12])
def test_two_sparse_rows_split_without_allocating(span):
    t, v = _rows([0.0, span])
    tracemalloc.start()
    try:
        with pytest.raises(
            RecordingError, match=r"too short \(no window\).*0\.07 s counts as a gap"
        ):
            Preprocessor(CARD).windows(t, v)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # not the 1,999 windows (or TiB) of interpolated data


def test_a_step_longer_than_the_fill_limit_splits_whatever_the_spacing():
    t = np.arange(0, 40, 0.5)  # 2 Hz rows: every step is 25 model periods
    assert len(split_at_gaps(t, 2, max_period=1 / 50)) == len(t)
    assert len(split_at_gaps(t, 2)) == 1  # relative to its own spacing only: no split
    fast = np.arange(1000) / 100.0  # 100 Hz: unchanged, the own period is smaller
    assert len(split_at_gaps(fast, 2, max_period=1 / 50)) == 1


def test_resampled_size_is_what_the_resampler_allocates():
    for rate_in in (20.0, 50.0, 100.0, 200.0):
        t = np.arange(int(rate_in * 7)) / rate_in
        v = np.zeros((t.size, 6))
        out = resample_segment(t, v, 50.0)
        k = int(round(rate_in / 50.0))
        assert resampled_size(t, 50.0) == ((out.shape[0] - 1) * k + 1 if k >= 2 else out.shape[0])


def test_resampled_samples_are_capped_per_recording():
    pre = Preprocessor(CARD, max_samples=10_000)
    big = np.arange(0, 400, 0.01)  # 400 s at 100 Hz: a fine grid of ~40,000 samples
    with pytest.raises(InputError, match=r"at most 10000 are accepted.*HAR_MAX_RESAMPLED_SAMPLES"):
        pre.windows(big, np.zeros((big.size, 6)))
    # rows 1 ns apart: the decimation factor is huge, the grid is not (its span is tiny)
    dense = np.arange(1000) * 1e-9
    assert resampled_size(dense, 50.0) < 10_000


def test_non_finite_after_unit_conversion_is_refused():
    window = np.tile([3e38, 3e38, 3e38, 0.0, 0.0, 0.0], (200, 1))[None]
    pre = Preprocessor(CARD)
    pre.check_windows(window)  # finite as sent, in m/s2
    with pytest.raises(InputError, match=r"out of range after conversion from g.*channel acc_x"):
        pre.check_windows(window, Units(acc="g", gyro="deg/s"))


def test_scorer_refuses_windows_that_overflow_when_scaled():
    async def infer(x: np.ndarray) -> np.ndarray:
        raise AssertionError("the model must not see them")

    scorer = Scorer(CARD, "t:1", infer)
    t = np.arange(0, 8, 0.02)
    values = np.tile([1e300, 0.1, 9.81, 0.1, 0.1, 0.1], (t.size, 1))  # float32: inf
    with pytest.raises(InputError, match="out of range after unit conversion and scaling"):
        asyncio.run(scorer.score(Preprocessor(CARD).windows(t, values).values))


def test_stream_chunks_1e12_s_apart_split_at_once():
    w = StreamWindower(CARD)
    for i in range(4):
        t, v = _rows([i * 1e12])
        assert len(w.push(t, v)) == 0
        assert w.buffered <= 1
    assert len(w.flush()) == 0
