"""Monitoring: feature rows, the profile writer, drift decisions, Prometheus metrics, alert rules.

Synthetic wrist-IMU data come from ``tests/fixtures/profiles/make_profiles.py``
(independent seeds = independent samples of one distribution). When the lead's
real held-out windows (``tests/fixtures/heldout_windows.npz``) are present they
are used too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml
from prometheus_client import REGISTRY

from har.card import ModelCard, Scaler
from har.errors import InputError
from har.monitoring import (
    Monitor,
    build_reference_profile,
    profiles,
    read_reference_profile,
    store,
    write_reference_profile,
)
from har.monitoring.drift import DRIFT, INSUFFICIENT, OK
from har.monitoring.features import FlipTracker, feature_names, feature_rows
from har.monitoring.metrics import CONFIDENCE_BUCKETS, exported_names
from har.settings import PRETRAINED_DIR, Settings

TESTS = Path(__file__).resolve().parent
FIXTURE_PROFILES = TESTS / "fixtures" / "profiles"
HELDOUT_NPZ = TESTS / "fixtures" / "heldout_windows.npz"
BUNDLED_REFERENCE = PRETRAINED_DIR / "reference_profile.bin"
ALERT_RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alert-rules.yml"
#: The threshold the drift tests hold the service to (see har.monitoring.drift).
THRESHOLD = 0.7
G = 9.80665


def _load_make_profiles() -> ModuleType:
    name = "har_test_make_profiles"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FIXTURE_PROFILES / "make_profiles.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


mp = _load_make_profiles()


def _card() -> ModelCard:
    return ModelCard(
        name="test-har",
        classes=list(mp.CLASSES),
        window=200,
        hop=100,
        sample_rate_hz=50.0,
        scaler=Scaler(mean=[0.0] * 6, scale=[1.0] * 6),
    )


def _settings(tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = {
        "profile_dir": tmp_path / "profiles",
        "profile_interval_s": 300.0,
        "profile_queue_size": 100_000,
        "drift_threshold": THRESHOLD,
        "drift_min_rows": 100,
        "uncertain_below": 0.6,
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _files_rows(folder: Path) -> tuple[int, list[store.ProfileFile]]:
    files = store.list_profiles(folder)
    return sum(profiles.row_count(profiles.read_view(f.path)) for f in files), files


@pytest.fixture(scope="module")
def reference_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = mp.synthetic(seed=1, n_recordings=120)
    path = tmp_path_factory.mktemp("ref") / "reference_profile.bin"
    write_reference_profile(
        build_reference_profile(
            ref.windows, ref.probs, classes=list(mp.CLASSES), sequence_ids=ref.sequence
        ),
        path,
    )
    return path


@pytest.fixture(scope="module")
def heldout() -> object:
    return mp.synthetic(seed=2, n_recordings=30)


# ------------------------------------------------------------------------ features
def test_feature_rows_are_the_documented_statistics() -> None:
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(5, 200, 6)) * [0.5, 0.5, 0.5, 40, 40, 40] + [0, G, 0, 0, 0, 0]).astype(
        np.float32
    )
    p = rng.dirichlet(np.ones(7), 5)
    rows = feature_rows(w, p, np.array([np.nan, 0, 1, 1, 0]))
    col = {n: rows[:, i] for i, n in enumerate(feature_names())}
    x = w.astype(np.float64)
    np.testing.assert_allclose(col["acc_y_mean"], x[:, :, 1].mean(1), rtol=1e-9)
    np.testing.assert_allclose(col["acc_y_std"], x[:, :, 1].std(1), rtol=1e-6)
    np.testing.assert_allclose(col["gyro_z_min"], x[:, :, 5].min(1))
    np.testing.assert_allclose(col["gyro_x_max"], x[:, :, 3].max(1))
    np.testing.assert_allclose(col["acc_mag_mean"], np.linalg.norm(x[:, :, :3], axis=2).mean(1))
    np.testing.assert_allclose(col["gyro_mag_mean"], np.linalg.norm(x[:, :, 3:], axis=2).mean(1))
    np.testing.assert_array_equal(col["pred_class"], p.argmax(1))
    np.testing.assert_allclose(col["confidence"], p.max(1))
    np.testing.assert_allclose(col["entropy"], -(p * np.log(p)).sum(1))
    np.testing.assert_array_equal(col["flip"][1:], [0, 1, 1, 0])
    assert np.isnan(col["flip"][0])


def test_flip_tracker_remembers_keys_across_calls_and_forgets_old_ones() -> None:
    ft = FlipTracker(capacity=2)
    assert np.isnan(ft.update("a", np.array([1, 1, 2]))[0])
    np.testing.assert_array_equal(ft.update("a", np.array([3, 3])), [1, 0])  # 2 → 3 across calls
    assert ft.update(None, np.array([1, 2])) is None
    ft.update("b", np.array([0]))
    ft.update("c", np.array([0]))  # evicts "a", the least recently used
    assert np.isnan(ft.update("a", np.array([3]))[0])
    assert len(ft) == 2


# --------------------------------------------------------------- writer and files
def test_every_observed_row_is_written_once_across_rollovers_and_workers(tmp_path: Path) -> None:
    card = _card()
    settings = _settings(tmp_path, profile_interval_s=0.08)
    mons = [Monitor(card, settings, None, worker_id=w) for w in ("api-1", "api-2")]
    data = mp.synthetic(seed=5, n_recordings=4, windows_per_recording=6)
    profiled_before = _sample("har_profile_rows_total")
    for m in mons:
        m.start()
        m.start()  # idempotent
    observed = 0
    for i in range(14):
        n = 1 + i % 5
        sl = slice(i, i + n)
        mons[i % 2].observe(data.windows[sl], data.probs[sl], sequence_key=f"rec{i % 3}")
        observed += n
        time.sleep(0.03)
    for m in mons:
        m.close()
        m.close()  # idempotent
    rows, files = _files_rows(settings.profile_dir)
    assert rows == observed == sum(m.rows_observed for m in mons)
    assert sum(m.rows_dropped for m in mons) == 0
    writers = {f.writer for f in files}
    assert writers == {f"api-1.{os.getpid()}", f"api-2.{os.getpid()}"}
    assert all(sum(f.writer == w for f in files) >= 2 for w in writers), "expected roll-overs"
    assert not list(settings.profile_dir.glob(".*.tmp"))
    assert _sample("har_profile_rows_total") - profiled_before == observed
    merged = profiles.merge_views(profiles.read_view(f.path) for f in files)
    assert profiles.row_count(merged) == observed
    assert profiles.classes_of(merged) == list(card.classes)


def test_a_full_queue_drops_and_counts_rows_without_blocking(tmp_path: Path) -> None:
    settings = _settings(tmp_path, profile_queue_size=50)
    mon = Monitor(_card(), settings, None, worker_id="full")  # writer not started: nothing drains
    data = mp.synthetic(seed=6, n_recordings=2, windows_per_recording=10)
    dropped_before = _sample("har_profile_rows_dropped_total")
    t0 = time.perf_counter()
    for _ in range(10):
        mon.observe(data.windows, data.probs)  # 20 windows each
    elapsed = time.perf_counter() - t0
    assert mon.rows_observed == 200
    assert mon.rows_dropped == 160  # 2 calls fit in 50 rows, 8 do not
    assert _sample("har_profile_rows_dropped_total") - dropped_before == 160
    assert elapsed < 1.0
    mon.close()
    rows, _ = _files_rows(settings.profile_dir)
    assert rows == mon.rows_observed - mon.rows_dropped == 40
    mon.observe(data.windows, data.probs)  # after close: counted, not written
    assert mon.rows_dropped == 180


def test_observe_leaves_features_and_whylogs_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request path only queues arrays: features, whylogs and metrics run on the writer."""
    import har.monitoring.monitor as monitor_module

    calls: list[str] = []
    real_rows, real_track = monitor_module.feature_rows, profiles.RollingProfile.track

    def rows_spy(*args: object, **kw: object) -> np.ndarray:
        calls.append(threading.current_thread().name)
        return real_rows(*args, **kw)

    def track_spy(self: profiles.RollingProfile, rows: np.ndarray) -> None:
        calls.append(threading.current_thread().name)
        real_track(self, rows)

    monkeypatch.setattr(monitor_module, "feature_rows", rows_spy)
    monkeypatch.setattr(profiles.RollingProfile, "track", track_spy)
    mon = Monitor(_card(), _settings(tmp_path), None, worker_id="thread", flush_s=0.05)
    mon.start()
    data = mp.synthetic(seed=7, n_recordings=1, windows_per_recording=40)
    for i in range(40):
        mon.observe(data.windows[i : i + 1], data.probs[i : i + 1], sequence_key="s")
    assert threading.current_thread().name not in calls
    deadline = time.monotonic() + 30
    while mon._profile.rows < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    mon.close()
    assert mon.rows_written == 40
    writer = f"har-monitor-{mon.writer}"
    assert calls and set(calls) == {writer}


# ------------------------------------------------------------------------- drift
def _observe_all(mon: Monitor, windows: np.ndarray, probs: np.ndarray, chunk: int = 37) -> None:
    for i in range(0, len(windows), chunk):
        mon.observe(windows[i : i + chunk], probs[i : i + chunk], sequence_key=f"k{i % 4}")


def _broken(kind: str, windows: np.ndarray) -> np.ndarray:
    w = windows.copy()
    if kind == "milli_g_as_m_s2":
        w[..., :3] *= 1000.0 / G
    elif kind == "rad_s_as_deg_s":
        w[..., 3:] *= np.pi / 180.0
    elif kind.startswith("stuck_"):
        w[..., int(kind.removeprefix("stuck_"))] = 0.0
    return w


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
    tmp_path: Path, reference_path: Path, heldout: object, kind: str, must_drift: list[str]
) -> None:
    mon = Monitor(_card(), _settings(tmp_path), reference_path, worker_id="w")
    mon.start()
    _observe_all(mon, _broken(kind, heldout.windows), heldout.probs)
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
    mon = Monitor(_card(), _settings(tmp_path), reference_path, worker_id="w")
    _observe_all(mon, data.windows, data.probs)
    ans = mon.drift()
    mon.close()
    assert ans["status"] == OK, [f for f in ans["features"] if f["drifted"]]
    assert ans["rows"] == len(data.windows)
    assert max(f["score"] for f in ans["features"]) < THRESHOLD


def _real_heldout_windows() -> np.ndarray:
    with np.load(HELDOUT_NPZ) as z:
        return np.asarray(z["windows"], np.float32)


@pytest.mark.skipif(not HELDOUT_NPZ.is_file(), reason="real held-out windows not generated yet")
@pytest.mark.parametrize("kind", ["none", "milli_g_as_m_s2", "rad_s_as_deg_s", "stuck_2"])
def test_drift_on_real_heldout_windows(tmp_path: Path, kind: str) -> None:
    """Real data: reference = the bundled model's reference profile when there is one, else
    alternate blocks of 10 held-out windows (both halves hold every subject and activity)."""
    windows = _real_heldout_windows()
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), len(windows)).astype(np.float32)
    block = (np.arange(len(windows)) // 10) % 2 == 0
    if BUNDLED_REFERENCE.is_file():
        ref, prod = BUNDLED_REFERENCE, np.ones(len(windows), bool)
    else:
        ref = tmp_path / "reference.bin"
        write_reference_profile(build_reference_profile(windows[block], probs[block]), ref)
        prod = ~block
    mon = Monitor(_card(), _settings(tmp_path), ref, worker_id="real")
    _observe_all(mon, _broken(kind, windows[prod]), probs[prod])
    ans = mon.drift()
    mon.close()
    scores = {f["name"]: round(f["score"], 3) for f in ans["features"]}
    assert ans["status"] == (OK if kind == "none" else DRIFT), scores


def test_insufficient_data_below_min_rows_and_without_reference(
    tmp_path: Path, reference_path: Path, heldout: object
) -> None:
    mon = Monitor(_card(), _settings(tmp_path), reference_path, worker_id="few")
    broken = _broken("milli_g_as_m_s2", heldout.windows[:60])
    mon.observe(broken, heldout.probs[:60])
    ans = mon.drift()
    assert ans["status"] == INSUFFICIENT and ans["rows"] == 60
    assert not any(f["drifted"] for f in ans["features"])
    assert ans["features"][0]["score"] is not None  # scores are still shown
    mon.close()
    no_ref = Monitor(_card(), _settings(tmp_path / "b"), None, worker_id="noref")
    no_ref.observe(heldout.windows, heldout.probs)
    ans = no_ref.drift()
    no_ref.close()
    assert ans["status"] == INSUFFICIENT and ans["rows"] == len(heldout.windows)
    assert ans["reference_rows"] == 0 and "reason" in ans
    json.dumps(ans, allow_nan=False)  # the answer is strict JSON


def test_flip_rate_counts_pairs_across_calls_of_one_sequence(tmp_path: Path) -> None:
    mon = Monitor(_card(), _settings(tmp_path), None, worker_id="flip")
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


def test_drift_interval_selects_files_of_every_worker(tmp_path: Path, reference_path: Path) -> None:
    """The committed fixture: 4 intervals × 2 workers; gyro in rad/s in the last interval."""
    folder = tmp_path / "profiles"
    shutil.copytree(FIXTURE_PROFILES, folder, ignore=shutil.ignore_patterns("*.py", "reference*"))
    mon = Monitor(
        _card(), _settings(tmp_path), FIXTURE_PROFILES / "reference.bin", worker_id="reader"
    )
    t = datetime(2025, 3, 24, 8, 0, tzinfo=UTC)
    last = mon.drift(since=t.replace(minute=15), until=t.replace(minute=20))
    earlier = mon.drift(since=t, until=t.replace(minute=15))
    everything = mon.drift(since="2025-03-24T07:00:00Z")
    mon.close()
    assert last["status"] == DRIFT and earlier["status"] == OK
    assert {f["name"] for f in last["features"] if f["drifted"]} >= {"gyro_x_std", "gyro_z_max"}
    assert last["rows"] + earlier["rows"] == everything["rows"] == 8 * 72
    assert last["interval"]["since"].startswith("2025-03-24T08:15:00")


def test_drift_sees_rows_not_yet_written_and_sets_gauges(
    tmp_path: Path, reference_path: Path, heldout: object
) -> None:
    mon = Monitor(_card(), _settings(tmp_path), reference_path, worker_id="gauge")
    mon.start()
    mon.observe(_broken("rad_s_as_deg_s", heldout.windows), heldout.probs, sequence_key="r")
    ans = mon.drift()  # before any file exists
    assert ans["rows"] == len(heldout.windows) and not store.list_profiles(mon.profile_dir)
    score = {f["name"]: f["score"] for f in ans["features"]}
    assert _sample("har_drift_score", {"feature": "gyro_y_std"}) == pytest.approx(
        score["gyro_y_std"]
    )
    assert _sample("har_drift_threshold", {"feature": "acc_x_mean"}) == THRESHOLD
    assert _sample("har_drift_status", {"status": "drift"}) == 1.0
    assert _sample("har_drift_status", {"status": "ok"}) == 0.0
    assert _sample("har_drift_rows") == len(heldout.windows)
    assert _sample("har_drift_features_drifted") == sum(f["drifted"] for f in ans["features"])
    assert _sample("har_drift_flip_rate") == pytest.approx(ans["stability"]["flip_rate"])
    assert time.time() - _sample("har_drift_computed_timestamp_seconds") < 60
    mon.close()
    rows, _ = _files_rows(mon.profile_dir)
    assert rows == len(heldout.windows)


def test_predictions_counter_and_confidence_histogram(tmp_path: Path, heldout: object) -> None:
    mon = Monitor(_card(), _settings(tmp_path), None, worker_id="count")
    pred = heldout.probs.argmax(1)
    before = {c: _sample("har_predictions_total", {"activity": c}) for c in mp.CLASSES}
    hist_before = _sample("har_prediction_confidence_count")
    mon.observe(heldout.windows[:100], heldout.probs[:100])
    mon.observe(heldout.windows[100:], heldout.probs[100:])
    # The writer thread updates the counters; flush() does what it does every flush_s.
    mon.flush()
    for i, c in enumerate(mp.CLASSES):
        delta = _sample("har_predictions_total", {"activity": c}) - before[c]
        assert delta == int((pred == i).sum())
    assert _sample("har_prediction_confidence_count") - hist_before == len(pred)
    mon.close()


def test_reference_profile_round_trip(tmp_path: Path, heldout: object) -> None:
    view = build_reference_profile(heldout.windows, heldout.probs, classes=list(mp.CLASSES))
    path = tmp_path / "ref.bin"
    write_reference_profile(view, path)
    back = read_reference_profile(path)
    assert profiles.row_count(back) == len(heldout.windows)
    assert profiles.classes_of(back) == list(mp.CLASSES)
    d = profiles.distribution(back, "acc_mag_mean")
    assert d is not None and 8.0 < d.mean < 14.0  # gravity plus motion, m/s²


# ----------------------------------------------------------------------- metrics
def test_metrics_are_created_lazily_and_land_in_the_multiprocess_dir(tmp_path: Path) -> None:
    """Like a BentoML worker: PROMETHEUS_MULTIPROC_DIR set, metrics read back by the
    MultiProcessCollector that BentoML's /metrics uses."""
    prom = tmp_path / "prom"
    prom.mkdir()
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import har.monitoring
        assert "prometheus_client" not in sys.modules, "imported at import time"
        from har.card import ModelCard, Scaler
        from har.settings import Settings
        card = ModelCard(name="t", classes=["a", "b"], window=200, hop=100,
                         sample_rate_hz=50, scaler=Scaler(mean=[0] * 6, scale=[1] * 6))
        mon = har.monitoring.Monitor(
            card, Settings(profile_dir={str(tmp_path / "p")!r}), None, worker_id="mp")
        mon.observe(np.ones((3, 200, 6), np.float32), np.array([[.9, .1]] * 3, np.float32))
        mon.drift()
        mon.close()
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        print(generate_latest(reg).decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(prom)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert 'har_predictions_total{activity="a"} 3.0' in out.stdout
    assert "har_profile_rows_total 3.0" in out.stdout
    assert 'har_drift_status{status="insufficient_data"} 1.0' in out.stdout
    assert list(prom.glob("*.db")), "metrics must be written to the multiprocess dir"


def test_alert_rules_only_use_exported_metrics() -> None:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    exported = set(exported_names())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 4 and all("alert" in r for g in rules["groups"] for r in g["rules"])
    used = {m for e in exprs for m in re.findall(r"\bhar_[a-z0-9_]+", e)}
    assert used and used <= exported, used - exported
    # a histogram bucket named in a rule must exist
    for le in re.findall(r'le="([0-9.]+)"', "\n".join(exprs)):
        assert float(le) in CONFIDENCE_BUCKETS
    # the drift alert looks at the status gauge's label values the code sets
    assert 'status="drift"' in "\n".join(exprs)


def test_default_drift_threshold_is_the_calibrated_one() -> None:
    """Real held-out subjects score up to ~0.55 and broken units 1.0 (see har.monitoring.drift);
    the old default 0.3 flags every new wearer."""
    assert Settings.model_fields["drift_threshold"].default == THRESHOLD


# ------------------------------------------------------------------------- store
def test_profile_file_names_round_trip_and_times_parse() -> None:
    t0 = datetime(2025, 3, 24, 7, 52, 19, 123456, tzinfo=UTC)
    t1 = datetime(2025, 3, 24, 7, 57, 19, tzinfo=UTC)
    writer = store.writer_name("api worker/1", 42)
    assert writer == "api-worker-1.42"
    path = store.profile_path(Path("/x"), t0, t1, writer)
    f = store.parse_name(path)
    assert f is not None and (f.start, f.end, f.writer) == (t0, t1, writer)
    assert store.parse_name(Path("/x/notes.txt")) is None
    assert f.overlaps(t1, None) is False  # touching is not overlapping
    assert f.overlaps(None, t0) is False and f.overlaps(t0, t1) is True
    now = datetime(2025, 3, 24, 12, 0, tzinfo=UTC)
    since, until = store.parse_interval("6h", "2025-03-24T11:00:00", now=now)
    assert since == datetime(2025, 3, 24, 6, 0, tzinfo=UTC)
    assert until == datetime(2025, 3, 24, 11, 0, tzinfo=UTC)
    assert store.as_utc("2025-03-24T08:00:00+02:00") == datetime(2025, 3, 24, 6, 0, tzinfo=UTC)
    with pytest.raises(InputError, match="ISO 8601"):
        store.parse_interval("last tuesday", None)
    with pytest.raises(InputError, match="after until"):
        store.parse_interval("1h", "2h", now=now)
