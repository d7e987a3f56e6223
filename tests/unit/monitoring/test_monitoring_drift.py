"""har.monitoring.drift: which intervals drift (whole interval and its recent part)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from har.monitoring import Monitor, profiles, store
from har.monitoring.drift import DRIFT, INSUFFICIENT, OK, DriftConfig, evaluate
from har.monitoring.features import feature_names, feature_rows
from har.settings import Settings
from tests.helpers.monitoring import (
    BUNDLED_REFERENCE,
    THRESHOLD,
    broken,
    card,
    mp,
    observe_all,
    real_heldout,
    settings,
)


@pytest.mark.parametrize(
    ("kind", "must_drift"),
    [
        ("milli_g_as_m_s2", ["acc_x_std", "acc_y_std", "acc_z_std", "acc_mag_mean"]),
        ("rad_s_as_deg_s", ["gyro_x_std", "gyro_y_std", "gyro_z_std", "gyro_mag_mean"]),
        ("stuck_1", ["acc_y_std"]),  # accelerometer y axis dead at 0
        ("stuck_5", ["gyro_z_std"]),  # gyroscope z axis dead at 0
    ],
)
def test_drift_is_flagged_for_broken_inputs(
    tmp_path: Path,
    reference_path: Path,
    heldout_synthetic: object,
    kind: str,
    must_drift: list[str],
) -> None:
    mon = Monitor(card(), settings(tmp_path), reference_path, worker_id="w")
    mon.start()
    observe_all(mon, broken(kind, heldout_synthetic.windows), heldout_synthetic.probs)
    ans = mon.drift()
    mon.close()
    assert ans["status"] == DRIFT
    drifted = {f["name"] for f in ans["features"] if f["drifted"]}
    assert set(must_drift) <= drifted, ans["features"]
    assert all(f["score"] >= THRESHOLD for f in ans["features"] if f["name"] in must_drift)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_no_drift_for_heldout_recordings_of_the_training_distribution(
    tmp_path: Path, reference_path: Path, seed: int
) -> None:
    data = mp.synthetic(seed=seed, n_recordings=30)
    mon = Monitor(card(), settings(tmp_path), reference_path, worker_id="w")
    observe_all(mon, data.windows, data.probs)
    ans = mon.drift()
    mon.close()
    assert ans["status"] == OK, [f for f in ans["features"] if f["drifted"]]
    assert ans["rows"] == len(data.windows)
    assert max(f["score"] for f in ans["features"]) < THRESHOLD


@pytest.mark.parametrize("kind", ["none", "milli_g_as_m_s2", "rad_s_as_deg_s", "stuck_2"])
def test_drift_on_real_heldout_windows_against_the_bundled_reference(
    tmp_path: Path, kind: str
) -> None:
    real = real_heldout()
    windows = np.asarray(real["windows"], np.float32)
    probs = np.random.default_rng(0).dirichlet(np.ones(7), len(windows)).astype(np.float32)
    mon = Monitor(card(), settings(tmp_path), BUNDLED_REFERENCE, worker_id="real")
    observe_all(mon, broken(kind, windows), probs)
    ans = mon.drift()
    mon.close()
    scores = {f["name"]: round(f["score"], 3) for f in ans["features"]}
    assert ans["status"] == (OK if kind == "none" else DRIFT), scores


def test_default_threshold_separates_real_new_subjects_from_wrong_units() -> None:
    """Each real held-out subject (a wearer the model never saw) scores below the default
    threshold on every feature; the same windows in milli-g declared as m/s² reach it."""
    default = Settings.model_fields["drift_threshold"].default
    real = real_heldout()
    windows = np.asarray(real["windows"], np.float32)
    probs = np.random.default_rng(1).dirichlet(np.ones(7), len(windows))
    ref = profiles.read_view(BUNDLED_REFERENCE)
    cfg = DriftConfig(threshold=default)
    t = datetime(2025, 3, 24, 8, 0, tzinfo=UTC)

    def worst(w: np.ndarray, p: np.ndarray) -> float:
        view = profiles.profile_rows(feature_names(), feature_rows(w, p, None))
        f = store.ProfileFile(Path("x"), t, t + timedelta(seconds=300), "w")
        ans, _ = evaluate(ref, [(f, view)], cfg, since=t, until=f.end, recent_s=300)
        return max(x["score"] for x in ans["features"])

    for subject in np.unique(real["subjects"]):
        m = real["subjects"] == subject
        assert worst(windows[m], probs[m]) < default - 0.1, subject
        assert worst(broken("milli_g_as_m_s2", windows[m]), probs[m]) >= default


def _write_part(
    folder: Path, start: datetime, seconds: float, windows: np.ndarray, probs: np.ndarray
) -> None:
    rows = feature_rows(windows, probs, None)
    end = start + timedelta(seconds=seconds)
    path = store.profile_path(folder, start, end, "api0.1")
    profiles.write_view(profiles.profile_rows(feature_names(), rows), path)


def test_a_half_broken_window_is_flagged_by_its_recent_part(tmp_path: Path) -> None:
    """900 s of real held-out windows in three 300-s profiles; the client switches to
    milli-g declared as m/s² half-way (t = 450 s). The whole window scores ~0.6 (half its
    windows out of the reference range: sqrt(1 - sqrt(0.5)) = 0.54 in theory), below the
    0.7 threshold; its last profile interval, all broken, scores 1.0 and flags it."""
    real = real_heldout()
    windows = np.asarray(real["windows"], np.float32)
    probs = np.random.default_rng(2).dirichlet(np.ones(7), len(windows))
    n = len(windows) // 3  # windows per 300 s (3 profiles)
    order = np.random.default_rng(3).permutation(len(windows))[: 3 * n]
    w, p = windows[order], probs[order]
    w[3 * n // 2 :] = broken("milli_g_as_m_s2", w[3 * n // 2 :])
    folder = tmp_path / "profiles"
    t0 = datetime(2025, 3, 24, 8, 0, tzinfo=UTC)
    for k in range(3):
        sl = slice(k * n, (k + 1) * n)
        _write_part(folder, t0 + timedelta(seconds=300 * k), 300, w[sl], p[sl])
    mon = Monitor(card(), settings(tmp_path), BUNDLED_REFERENCE, worker_id="reader")
    ans = mon.drift(since=t0, until=t0 + timedelta(seconds=900))
    mon.close()
    whole = max(f["score"] for f in ans["features"])
    recent = max(f["recent_score"] for f in ans["features"])
    print(f"half-broken 900-s window: whole-window max score {whole:.3f}, recent {recent:.3f}")
    assert ans["rows"] == 3 * n and ans["recent"]["rows"] == n
    assert 0.45 < whole < THRESHOLD  # the old rule (whole window only) would say ok
    assert recent >= 0.95 and ans["status"] == DRIFT
    acc_std = next(f for f in ans["features"] if f["name"] == "acc_x_std")
    assert acc_std["drifted"] and acc_std["score"] < THRESHOLD <= acc_std["recent_score"]
    assert not any(f["drifted"] for f in ans["features"] if f["name"].startswith("gyro_"))


def test_the_recent_part_reaches_back_one_interval_just_after_a_roll_over() -> None:
    """Healthy until t = 600 s, broken since; at t = 905 s the interval opened at 900 s holds
    5 windows: the recent part then also takes the interval of 600-900 s, and the status
    stays drift although the whole window (a third broken) scores below threshold."""
    real = real_heldout()
    windows = np.asarray(real["windows"], np.float32)
    probs = np.random.default_rng(4).dirichlet(np.ones(7), len(windows))
    n = len(windows) // 3
    t0 = datetime(2025, 3, 24, 8, 0, tzinfo=UTC)
    plan = [
        (0, 300, slice(0, n), "none"),
        (300, 300, slice(n, 2 * n), "none"),
        (600, 300, slice(2 * n, 3 * n), "milli_g_as_m_s2"),
        (900, 5, slice(0, 5), "milli_g_as_m_s2"),
    ]
    parts = []
    for k, (start, seconds, sl, kind) in enumerate(plan):
        begin = t0 + timedelta(seconds=start)
        f = store.ProfileFile(Path(f"p{k}"), begin, begin + timedelta(seconds=seconds), "a.1")
        rows = feature_rows(broken(kind, windows[sl]), probs[sl], None)
        parts.append((f, profiles.profile_rows(feature_names(), rows)))
    ref = profiles.read_view(BUNDLED_REFERENCE)
    until = t0 + timedelta(seconds=905)
    since = until - timedelta(seconds=900)
    ans, _ = evaluate(ref, parts, DriftConfig(), since=since, until=until, recent_s=300)
    assert ans["rows"] == 3 * n + 5 and ans["recent"]["rows"] == n + 5
    assert ans["recent"]["since"].startswith("2025-03-24T08:05:05")
    assert max(f["score"] for f in ans["features"]) < THRESHOLD
    assert min(f["recent_score"] for f in ans["features"] if f["name"] == "acc_mag_mean") > 0.95
    assert ans["status"] == DRIFT


def test_insufficient_data_below_min_rows_and_without_reference(
    tmp_path: Path, reference_path: Path, heldout_synthetic: object
) -> None:
    data = heldout_synthetic
    mon = Monitor(card(), settings(tmp_path), reference_path, worker_id="few")
    mon.observe(broken("milli_g_as_m_s2", data.windows[:60]), data.probs[:60])
    ans = mon.drift()
    assert ans["status"] == INSUFFICIENT and ans["rows"] == 60
    assert not any(f["drifted"] for f in ans["features"])
    assert ans["features"][0]["score"] is not None  # scores are still shown
    mon.close()
    no_ref = Monitor(card(), settings(tmp_path / "b"), None, worker_id="noref")
    no_ref.observe(data.windows, data.probs)
    ans = no_ref.drift()
    no_ref.close()
    assert ans["status"] == INSUFFICIENT and ans["rows"] == len(data.windows)
    assert ans["reference_rows"] == 0 and "reason" in ans
    json.dumps(ans, allow_nan=False)  # the answer is strict JSON


def test_flip_rate_counts_pairs_across_calls_of_one_sequence(tmp_path: Path) -> None:
    mon = Monitor(card(), settings(tmp_path), None, worker_id="flip")
    w = mp.synthetic(seed=8, n_recordings=1, windows_per_recording=6).windows

    def probs(classes: list[int]) -> np.ndarray:
        p = np.full((len(classes), 7), 0.01, np.float32)
        p[np.arange(len(classes)), classes] = 0.94
        return p

    # stream "s": 0 0 | 1 1 1 | 1 0   → pairs 6, flips 2 (both across calls)
    mon.observe(w[:2], probs([0, 0]), sequence_key="s")
    mon.observe(w[:3], probs([1, 1, 1]), sequence_key="s")
    mon.observe(w[:5], probs([2, 2, 2, 2, 2]), sequence_key="other")  # 4 pairs, 0 flips
    mon.observe(w[:2], probs([1, 0]), sequence_key="s")
    mon.observe(w[:4], probs([3, 4, 5, 6]))  # no key: no pairs
    ans = mon.drift()
    mon.close()
    assert ans["stability"]["pairs"] == 6 + 4
    assert ans["stability"]["flip_rate"] == pytest.approx(2 / 10)
    assert ans["rows"] == 16
    assert ans["activities"]["PEN"] == 3 and ans["activities"]["FEL"] == 5
    assert ans["confidence"]["mean"] == pytest.approx(0.94, abs=1e-6)
    assert ans["confidence"]["uncertain_share"] == 0.0
