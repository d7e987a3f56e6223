"""Windows kept for labelling (har/monitoring/samples.py) and their export (har/cli/samples.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from har.cli.samples import apply_labels, export, manifest_path
from har.domain.card import Units
from har.domain.errors import InputError
from har.monitoring import store
from har.monitoring.sample_files import list_segments, read_samples
from har.monitoring.samples import DRIFT as DRIFT_REASON
from har.monitoring.samples import SampleKeeper

CLASSES = ["a", "b", "c"]
G = Units(acc="g", gyro="rad/s")


def keeper(d: Path, **kw) -> SampleKeeper:
    args = {
        "model": "m:1",
        "classes": CLASSES,
        "uncertain_below": 0.6,
        "random_share": 0.0,
        "drift_share": 0.0,
        "max_bytes": 10**9,
        "flush_s": 3600,
        "worker_id": "api1",
        "seed": 0,
        **kw,
    }
    return SampleKeeper(d, **args)


def batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    windows = rng.normal(size=(n, 20, 6)).astype(np.float32) * 9.8
    probs = np.tile(np.array([[0.9, 0.05, 0.05]], np.float32), (n, 1))
    probs[::2] = [0.4, 0.35, 0.25]  # every other window is uncertain
    return windows, probs


def test_uncertain_windows_are_kept_as_scored_with_their_context(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    w, p = batch(10)
    assert k.offer(w, p, G) == 5
    assert k.flush() is not None and k.flush() is None  # nothing pending: no empty segment
    got = read_samples(tmp_path)
    np.testing.assert_array_equal(got["windows"], w[::2])  # bit for bit, canonical units
    assert got["reason"].tolist() == ["uncertain"] * 5
    assert got["prediction"].tolist() == ["a"] * 5 and got["model"].tolist() == ["m:1"] * 5
    np.testing.assert_allclose(got["confidence"], 0.4)
    assert got["acc_unit"].tolist() == ["g"] * 5 and got["gyro_unit"].tolist() == ["rad/s"] * 5
    assert got["shadow_prediction"].tolist() == [""] * 5
    assert set(got) == {
        "windows",
        "time",
        "reason",
        "model",
        "prediction",
        "confidence",
        "shadow_prediction",
        "acc_unit",
        "gyro_unit",
    }  # fmt: skip  (nothing about the caller: no token, no address)


def test_reasons_combine_and_drift_and_random_shares_apply(tmp_path: Path) -> None:
    drifting = [False]
    k = keeper(tmp_path, random_share=1.0, drift_share=1.0, drifting=lambda: drifting[0])
    w, p = batch(4)
    k.offer(w, p, None)
    drifting[0] = True
    k.offer(w, p, None)
    k.flush()
    got = read_samples(tmp_path)
    assert got["reason"].tolist() == [
        "uncertain+random", "random", "uncertain+random", "random",
        "uncertain+drift+random", "drift+random", "uncertain+drift+random", "drift+random",
    ]  # fmt: skip
    assert got["acc_unit"].tolist() == [""] * 8  # units not known to the scorer
    assert len(read_samples(tmp_path, reason="drift")["time"]) == 4
    assert len(read_samples(tmp_path, reason="uncertain")["time"]) == 4
    k2 = keeper(tmp_path / "none", random_share=0.02, seed=1)
    w, p = batch(5000)
    p[:] = [0.9, 0.05, 0.05]
    assert 60 <= k2.offer(w, p, None) <= 140  # ~2 % of 5000, uniformly


def test_shadow_disagreements_are_kept_with_the_shadow_prediction(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    w, p = batch(4)
    # the served model predicted "a" for all four
    assert k.offer_disagreement(w, p, np.array(["b", "a", "c", "b"])) == 3
    k.flush()
    got = read_samples(tmp_path)
    assert got["reason"].tolist() == ["shadow_disagreement"] * 3
    assert got["shadow_prediction"].tolist() == ["b", "c", "b"]
    assert got["prediction"].tolist() == ["a"] * 3
    np.testing.assert_array_equal(got["windows"], w[[0, 2, 3]])


def test_disk_bound_holds_and_the_oldest_are_dropped(tmp_path: Path) -> None:
    w, p = batch(40)
    one = keeper(tmp_path / "probe")
    one.offer(w, p, None)
    seg = one.flush()
    assert seg is not None
    size = seg.stat().st_size  # one segment of 20 windows
    k = keeper(tmp_path / "s", max_bytes=int(3.5 * size))
    for i in range(10):
        k.offer(*batch(40, seed=i), None)
        k.flush()
        total = sum(s.path.stat().st_size for s in list_segments(tmp_path / "s"))
        assert total <= 3.5 * size
    assert len(list_segments(tmp_path / "s")) == 3
    assert k.kept == 200 and k.dropped == 140
    kept = read_samples(tmp_path / "s")
    np.testing.assert_array_equal(kept["windows"][-20:], batch(40, seed=9)[0][::2])


def test_replicas_on_one_volume_do_not_touch_each_other(tmp_path: Path, monkeypatch) -> None:
    w, p = batch(40)
    a = keeper(tmp_path, max_bytes=1)  # holds nothing: deletes every segment of its slot
    monkeypatch.setattr(store.socket, "gethostname", lambda: "other-pod")
    b = keeper(tmp_path)
    assert a.writer != b.writer and b.writer.endswith("other-pod")
    b.offer(w, p, None)
    b.flush()
    a.offer(w, p, None)
    a.flush()
    segs = list_segments(tmp_path)
    assert [s.writer for s in segs] == [b.writer]
    (tmp_path / f".{segs[0].path.name}.tmp").write_bytes(b"partial")  # a crash mid-write
    assert len(list_segments(tmp_path)) == 1 and len(read_samples(tmp_path)["time"]) == 20


def test_close_writes_what_is_pending(tmp_path: Path) -> None:
    k = keeper(tmp_path, flush_s=0.05)
    k.start()
    k.offer(*batch(6), None)
    k.close()
    k.close()
    assert len(read_samples(tmp_path)["time"]) == 3


def test_export_and_label_close_the_loop_with_the_gate(tmp_path: Path) -> None:
    from har.lifecycle.gate import load_eval_data

    k = keeper(tmp_path / "kept", random_share=0.5)
    w, p = batch(12)
    k.offer(w, p, G)
    k.flush()
    out = tmp_path / "batch.npz"
    n = export(tmp_path / "kept", out, "1d", None)
    assert n == len(read_samples(tmp_path / "kept")["time"]) >= 6
    assert export(tmp_path / "kept", tmp_path / "u.npz", None, "uncertain") == 6
    with manifest_path(out).open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n and rows[0]["label"] == "" and rows[0]["model"] == "m:1"
    assert rows[0]["time"].endswith("Z") and rows[0]["acc_unit"] == "g"
    with pytest.raises(InputError):
        export(tmp_path / "kept", tmp_path / "x.npz", None, "bogus")
    # a labeller fills the label column (one row left empty: its window is left out)
    for i, r in enumerate(rows):
        r["label"] = "" if i == 0 else CLASSES[i % 3]
    with manifest_path(out).open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    assert apply_labels(out) == n - 1
    data = load_eval_data(out)  # promote --eval-data reads it as it is
    assert len(data.labels) == n - 1 and data.labels[0] == CLASSES[1]
    with np.load(out) as f:
        np.testing.assert_array_equal(f["windows"], read_samples(tmp_path / "kept")["windows"][1:])


def test_random_draws_follow_the_generator_across_blocks(tmp_path: Path) -> None:
    """Draws are taken ahead in blocks; the sequence is the seeded generator's, in order."""
    from har.monitoring.samples import DRAW_BLOCK

    k = keeper(tmp_path, seed=3)
    sizes = [1, 5, DRAW_BLOCK - 7, 3, 2 * DRAW_BLOCK, 1]  # crosses block ends, and a big one
    got = np.concatenate([k._draws(n).copy() for n in sizes])
    np.testing.assert_array_equal(got, np.random.default_rng(3).random(sum(sizes)))


def test_single_window_offers_keep_the_same_shares_and_their_own_copy(tmp_path: Path) -> None:
    """One window per call (the usual request) is decided like a batch: uncertain always,
    drift and random at their shares, reasons combined; the stored window is a copy."""
    k = keeper(tmp_path, random_share=0.02, drift_share=0.5, drifting=lambda: True, seed=2)
    w, p = batch(4000)
    p[:] = [0.9, 0.05, 0.05]  # confident: kept only for drift or at random
    p[0] = [0.4, 0.35, 0.25]  # but this one is uncertain
    kept = [k.offer(w[i : i + 1], p[i : i + 1], G) for i in range(len(w))]
    assert kept[0] == 1 and set(kept) == {0, 1}
    first = w[0].copy()
    w[0] = 0.0  # the caller's array is reused: what was kept must not change
    k.flush()
    got = read_samples(tmp_path)
    np.testing.assert_array_equal(got["windows"][0], first)
    assert got["reason"][0].startswith("uncertain")
    reasons = [set(r.split("+")) for r in got["reason"].tolist()[1:]]
    assert 1800 <= sum(DRIFT_REASON in r for r in reasons) <= 2200  # ~50 % of 3999
    assert 45 <= sum("random" in r for r in reasons) <= 120  # ~2 % of 3999
    assert all(r <= {DRIFT_REASON, "random"} and r for r in reasons)
    assert k.kept == len(got["time"]) == sum(kept)


def test_the_answer_given_by_the_caller_is_stored_as_answered(tmp_path: Path) -> None:
    """``predicted`` and ``confidence`` passed in (the scorer's answer) are what is stored;
    without them they come from ``probs``."""
    k = keeper(tmp_path, uncertain_below=0.5)
    w, p = batch(4)  # probs say 0.4 for windows 0 and 2 (uncertain), 0.9 otherwise
    conf = np.array([0.45, 0.3, 0.45, 0.9], np.float32)  # the answer's own confidences
    predicted = np.array([2, 1, 2, 0])
    assert k.offer(w, p, None, predicted=predicted, confidence=conf) == 3
    assert k.offer(w[1:2], p[1:2], None, predicted=predicted[1:2], confidence=conf[1:2]) == 1
    k.flush()
    got = read_samples(tmp_path)
    assert got["prediction"].tolist() == ["c", "b", "c", "b"]
    np.testing.assert_allclose(got["confidence"], [0.45, 0.3, 0.45, 0.3])
    assert got["confidence"].dtype == np.float32
