"""Scorer and StreamSession with a deterministic fake model (no TensorFlow)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from har.core.scorer import THREAD_CHUNK_SAMPLES, Scorer
from har.domain.card import CANONICAL_UNITS, Units
from har.domain.errors import InputError
from har.domain.preprocessing import Preprocessor
from har.domain.recordings import Recording
from har.domain.timeline import TimelineOptions, timeline_of
from tests.helpers.cards import make_card
from tests.helpers.signals import synthetic_recording

CARD = make_card(
    ["a", "b", "c"], name="t", window=20, sample_rate_hz=10, scale=(2, 2, 2, 30, 30, 30)
)
G_RAD = np.array([9.80665] * 3 + [180 / np.pi] * 3)  # g, rad/s -> canonical


async def fake_infer(scaled: np.ndarray) -> np.ndarray:
    """Softmax of the per-channel means of the first three channels."""
    logits = scaled.mean(axis=1)[:, :3]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str | None]] = []

    def observe(self, windows, probs, *, sequence_key=None) -> None:
        self.seen.append((len(windows), sequence_key))


def signal(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples at the card's 10 Hz from t = 50 s."""
    return synthetic_recording(10, n / 10, t0=50.0, seed=seed, gyro_gain=10)


def run(coro):
    return asyncio.run(coro)


def test_predict_returns_typed_predictions_in_request_order() -> None:
    monitor = Recorder()
    scorer = Scorer(CARD, "t:1", fake_infer, monitor=monitor, max_windows=5)
    w = Preprocessor(CARD).windows(*signal(100)).values[:4]
    want = run(fake_infer(Preprocessor(CARD).scale(w)))
    got = run(scorer.predict(w / G_RAD.astype(np.float32), Units(acc="g", gyro="rad/s")))
    np.testing.assert_allclose(got.probs, want, rtol=1e-5)
    assert got.class_ids.tolist() == want.argmax(axis=1).tolist()
    assert got.classes == tuple(CARD.classes) and monitor.seen == [(4, None)]
    with pytest.raises(InputError, match="too many windows in one request: 6"):
        run(scorer.predict(np.zeros((6, 20, 6))))


def test_predict_recording_gives_windows_predictions_and_a_timeline() -> None:
    monitor = Recorder()
    t, v = signal(300)
    result = run(
        Scorer(CARD, "t:1", fake_infer, monitor=monitor).predict_recording(Recording(t - t[0], v))
    )
    assert len(result.windows) == len(result.predictions) == (300 - 20) // 10 + 1
    assert sum(s.windows for s in result.timeline.segments) == len(result.windows)
    assert result.timeline.segments[0].start == 0.0
    assert monitor.seen[0][0] == len(result.windows) and monitor.seen[0][1].startswith("rec-")
    with pytest.raises(InputError, match="recording too long: 29 windows"):
        run(Scorer(CARD, "t:1", fake_infer, max_windows=1).predict_recording(Recording(t, v)))


def test_recording_timeline_options_come_from_the_scorer_and_the_request() -> None:
    t, v = signal(600, seed=4)
    rec = Recording(t - t[0], v)
    scorer = Scorer(CARD, "t:1", fake_infer, timeline=TimelineOptions(smoothing="none"))
    raw = run(scorer.predict_recording(rec))
    probs = raw.predictions.probs
    assert (
        raw.timeline.segments
        == timeline_of(raw.windows, probs, CARD.classes, smoothing="none").segments
    )
    for asked in ("", None):  # empty or absent: the scorer's
        assert run(scorer.predict_recording(rec, asked)).timeline.smoothing == "none"
    smooth = run(scorer.predict_recording(rec, "viterbi"))
    assert smooth.timeline.smoothing == "viterbi"
    np.testing.assert_array_equal(smooth.predictions.probs, probs)  # raw windows either way
    with pytest.raises(InputError, match="unknown smoothing 'median'; use one of 'viterbi'"):
        run(scorer.predict_recording(rec, "median"))


def _stream(scorer: Scorer, t, v, sizes, units=None):
    async def main():
        session = scorer.stream("test")
        results, i = [], 0
        for k, n in enumerate(sizes):
            results.append(
                await session.push(t[i : i + n], v[i : i + n].ravel(), units if k == 0 else None)
            )
            i += n
        results.append(await session.close())
        return session, results

    return run(main())


def test_a_stream_gives_the_offline_windows_numbered_across_chunks() -> None:
    t, v = signal(400)
    monitor = Recorder()
    scorer = Scorer(CARD, "t:1", fake_infer, monitor=monitor)
    session, results = _stream(scorer, t, v / G_RAD, [7, 150, 1, 242], Units(acc="g", gyro="rad/s"))
    offline = Preprocessor(CARD).windows(t, v)
    firsts = [r.first_index for r in results]
    assert firsts == sorted(firsts) and firsts[0] == 0
    starts = np.concatenate([r.windows.start_s for r in results])
    np.testing.assert_allclose(starts, offline.start_s, atol=1e-9)
    probs = np.concatenate([r.predictions.probs for r in results])
    np.testing.assert_allclose(
        probs, run(fake_infer(Preprocessor(CARD).scale(offline.values))), atol=1e-5
    )
    assert session.windows == len(offline) and session.chunks == 4
    # the stream's timeline is the offline one of the same windows and probabilities
    want = timeline_of(offline, probs, CARD.classes)
    assert session.timeline().segments == want.segments and want.smoothing == "viterbi"
    assert session.timeline("none").smoothing == "none"
    assert {k for _, k in monitor.seen} == {session.key} and session.key.startswith("test-")


def test_a_chunk_larger_than_the_thread_threshold_gives_the_same_windows() -> None:
    t, v = signal(THREAD_CHUNK_SAMPLES + 100)
    scorer = Scorer(CARD, "t:1", fake_infer, max_windows=10_000)
    _, whole = _stream(scorer, t, v, [len(t)])
    _, parts = _stream(scorer, t, v, [2000] * ((len(t) + 1999) // 2000))
    np.testing.assert_array_equal(
        np.concatenate([r.predictions.class_ids for r in whole]),
        np.concatenate([r.predictions.class_ids for r in parts]),
    )


def test_stream_units_are_set_on_the_first_chunk_only() -> None:
    t, v = signal(40)
    g = Units(acc="g")

    async def main(second: Units | None) -> None:
        session = Scorer(CARD, "t:1", fake_infer).stream()
        await session.push(t[:20], v[:20].ravel(), g)
        await session.push(t[20:], v[20:].ravel(), second)

    run(main(None))
    run(main(Units(acc="g")))  # repeating the same units is fine
    with pytest.raises(InputError, match=r"chunk 1: units can only be set on a stream's first"):
        run(main(Units()))


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.zeros(11), r"chunk 0: 11 values for 2 timestamps; send 6 values per timestamp"),
        (
            np.r_[np.zeros(7), np.inf, np.zeros(4)],
            "chunk 0: sample 1 has NaN or infinity in channel acc_y",
        ),
    ],
)
def test_stream_errors_name_the_chunk(values, match: str) -> None:
    async def main() -> None:
        await Scorer(CARD, "t:1", fake_infer).stream().push([1.0, 1.1], values)

    with pytest.raises(InputError, match=match):
        run(main())


@pytest.mark.parametrize(
    "body", [None, False, 0, 1.5, "x", np.asarray(None), np.asarray(0.0), np.asarray(False)]
)
def test_a_scalar_instead_of_windows_is_a_client_error(body: object) -> None:
    """The fast JSON parser hands over 0-d arrays for `"windows": null|false|0` (was a 500):
    the HTTP edge's array (or its refusal), then the scorer's count and shape check."""
    from har.http.request_body import _windows_array

    async def infer(x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 2), np.float32)

    with pytest.raises(InputError, match=r"shape|numbers"):
        Scorer(make_card(["a", "b"]), "t", infer).check_windows(_windows_array(body))


def test_scorer_applies_the_temperature_after_the_model_and_monitors_calibrated_values() -> None:
    """The model call (and a shadow tapping it) sees raw output; answers and monitoring get
    ``softmax(log p / T)``, flagged ``calibrated``."""
    from har.domain.calibration import apply_temperature

    raw_seen: list[np.ndarray] = []

    async def infer(x: np.ndarray) -> np.ndarray:
        out = np.asarray(await fake_infer(x))
        raw_seen.append(out)
        return out

    class ProbsMonitor:
        def __init__(self) -> None:
            self.probs: list[np.ndarray] = []

        def observe(self, windows, probs, *, sequence_key=None) -> None:
            self.probs.append(np.asarray(probs))

    monitor = ProbsMonitor()
    x = Preprocessor(CARD).windows(*signal(100)).values[:4]
    plain = run(Scorer(CARD, "t:1", infer).score(x))
    calibrated = run(Scorer(CARD, "t:1", infer, monitor=monitor, temperature=2.0).score(x))
    assert not plain.calibrated and calibrated.calibrated
    np.testing.assert_array_equal(raw_seen[0], raw_seen[1])  # the model's output is raw
    np.testing.assert_allclose(calibrated.probs, apply_temperature(raw_seen[1], 2.0), atol=1e-7)
    assert (calibrated.class_ids == plain.class_ids).all()
    assert (calibrated.confidence < plain.confidence).all()
    np.testing.assert_allclose(monitor.probs[-1], calibrated.probs)


def _refused(windows: np.ndarray, units: Units = CANONICAL_UNITS, card=CARD) -> str:
    async def infer(x: np.ndarray) -> np.ndarray:
        raise AssertionError("the model must not see them")

    with pytest.raises(InputError) as info:
        run(Scorer(card, "t:1", infer).predict(windows, units))
    return str(info.value)


def test_predict_names_the_stage_where_a_value_stopped_being_finite() -> None:
    """One scan of the model input; a refusal names the first stage: as sent, after the
    unit conversion, after scaling (the order the checks had when each stage scanned)."""
    w = np.zeros((2, 20, 6), np.float32)
    sent = w.copy()
    sent[1, 3, 4] = np.nan
    sent[0, 0, 0] = 3e38  # overflows in g too: the NaN as sent is named first
    assert _refused(sent, Units(acc="g")).startswith(
        "windows contain NaN or infinity (first at window 1, sample 3, channel"
    )
    converted = w.copy()
    converted[1, 2, 0] = 3e38  # finite in g, infinite in m/s2
    assert "out of range after conversion from g/deg/s (first at window 1, sample 2" in (
        _refused(converted, Units(acc="g"))
    )
    narrow = make_card(["a", "b", "c"], window=20, sample_rate_hz=10, scale=(0.5,) * 6)
    scaled = w.copy()
    scaled[0, 5, 3] = 3e38  # finite as sent (canonical units), infinite divided by 0.5
    assert "out of range after unit conversion and scaling (first at window 0, sample 5" in (
        _refused(scaled, card=narrow)
    )


def test_predict_scans_the_windows_for_finiteness_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    isfinite = np.isfinite

    def counting(x, *args, **kwargs):
        calls.append(np.shape(x))
        return isfinite(x, *args, **kwargs)

    w = Preprocessor(CARD).windows(*signal(100)).values[:4]
    scorer = Scorer(CARD, "t:1", fake_infer)
    monkeypatch.setattr(np, "isfinite", counting)
    run(scorer.predict(w, Units(acc="g", gyro="rad/s")))
    assert calls.count(w.shape) == 1, calls


def test_the_sample_is_offered_the_answer_as_given_with_its_classes_and_confidences() -> None:
    """The sampler gets the canonical windows and the answer's (calibrated) probabilities,
    classes and confidences: what the client was told, not recomputed from other values."""

    class Sampler:
        def __init__(self) -> None:
            self.calls: list[tuple] = []

        def offer(self, canonical, probs, units, *, predicted=None, confidence=None) -> int:
            self.calls.append((canonical, probs, units, predicted, confidence))
            return 0

        def close(self, timeout: float = 10.0) -> None:
            pass

    sampler = Sampler()
    scorer = Scorer(CARD, "t:1", fake_infer, sampler=sampler, temperature=2.0)
    w = Preprocessor(CARD).windows(*signal(100)).values[:3]
    units = Units(acc="g", gyro="rad/s")
    answer = run(scorer.predict(w / G_RAD.astype(np.float32), units))
    ((canonical, probs, got_units, predicted, confidence),) = sampler.calls
    np.testing.assert_allclose(canonical, w, rtol=1e-6)
    assert got_units == units and probs is answer.probs
    assert predicted is answer.class_ids and confidence is answer.confidence
