"""har.monitoring.monitor: drift over every worker's profiles, the refresher, the live report."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from har.domain.errors import InputError
from har.monitoring import Monitor, store
from har.monitoring.drift import DRIFT, OK
from tests.helpers.monitoring import (
    FIXTURE_PROFILES,
    THRESHOLD,
    broken,
    card,
    files_rows,
    mp,
    sample,
    settings,
)


def test_drift_interval_selects_files_of_every_worker(tmp_path: Path) -> None:
    """The committed fixture: 4 intervals × 2 workers; gyro in rad/s in the last interval."""
    folder = tmp_path / "profiles"
    shutil.copytree(FIXTURE_PROFILES, folder, ignore=shutil.ignore_patterns("*.py", "reference*"))
    mon = Monitor(card(), settings(tmp_path), FIXTURE_PROFILES / "reference.bin", worker_id="r")
    t = datetime(2025, 3, 24, 8, 0, tzinfo=UTC)
    last = mon.drift(since=t.replace(minute=15), until=t.replace(minute=20))
    earlier = mon.drift(since=t, until=t.replace(minute=15))
    everything = mon.drift(since="2025-03-24T07:00:00Z", until=t.replace(minute=20))
    mon.close()
    assert last["status"] == DRIFT and earlier["status"] == OK
    assert {f["name"] for f in last["features"] if f["drifted"]} >= {"gyro_x_std", "gyro_z_max"}
    assert last["rows"] + earlier["rows"] == everything["rows"] == 8 * 72
    assert last["interval"]["since"].startswith("2025-03-24T08:15:00")
    # the whole 20 minutes: a quarter broken, below threshold, but the last interval flags it
    gyro = next(f for f in everything["features"] if f["name"] == "gyro_x_std")
    assert gyro["score"] < THRESHOLD <= gyro["recent_score"] and everything["status"] == DRIFT
    assert everything["recent"]["rows"] == last["rows"]


def test_refresher_keeps_the_gauges_current_without_any_drift_call(
    tmp_path: Path, reference_path: Path, heldout_synthetic: object
) -> None:
    s = settings(tmp_path, drift_every_s=0.1, drift_window_s=600.0)
    mon = Monitor(card(), s, reference_path, worker_id="gauge", drain_s=0.05)
    mon.start()
    data = heldout_synthetic
    mon.observe(broken("rad_s_as_deg_s", data.windows), data.probs, sequence_key="r")
    deadline = time.monotonic() + 30
    while sample("har_drift_rows") != len(data.windows) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sample("har_drift_rows") == len(data.windows)
    assert not store.list_profiles(mon.profile_dir) or all(
        f.partial for f in store.list_profiles(mon.profile_dir)
    )
    assert sample("har_drift_status", {"status": "drift"}) == 1.0
    assert sample("har_drift_status", {"status": "ok"}) == 0.0
    assert sample("har_drift_window_seconds") == pytest.approx(600.0)
    assert sample("har_drift_threshold", {"feature": "acc_x_mean"}) == THRESHOLD
    assert sample("har_drift_score", {"feature": "gyro_y_std"}) >= THRESHOLD
    stamp = sample("har_drift_computed_timestamp_seconds")
    assert time.time() - stamp < 5
    deadline = time.monotonic() + 10  # every 0.1 s, each pass slower on a loaded machine
    while sample("har_drift_computed_timestamp_seconds") == stamp and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sample("har_drift_computed_timestamp_seconds") > stamp, "recomputed again"
    # an explicit drift call of another interval leaves the gauges to the refresher
    mon.drift(since="2025-03-24T07:00:00Z", until="2025-03-24T07:10:00Z")
    assert sample("har_drift_window_seconds") == pytest.approx(600.0)
    mon.close()
    assert not any(t.name == f"har-drift-{mon.writer}" for t in threading.enumerate())
    stopped = sample("har_drift_computed_timestamp_seconds")
    time.sleep(0.3)
    assert sample("har_drift_computed_timestamp_seconds") == stopped, "stopped on close"
    assert files_rows(mon.profile_dir)[0] == len(data.windows)


def test_without_refresher_a_drift_call_sets_the_gauges(
    tmp_path: Path, reference_path: Path, heldout_synthetic: object
) -> None:
    mon = Monitor(card(), settings(tmp_path, drift_every_s=0), reference_path, worker_id="call")
    mon.observe(heldout_synthetic.windows, heldout_synthetic.probs)
    ans = mon.drift(since="2025-03-24T07:00:00Z")
    mon.close()
    score = {f["name"]: f["score"] for f in ans["features"]}
    assert sample("har_drift_score", {"feature": "gyro_y_std"}) == pytest.approx(
        score["gyro_y_std"]
    )
    assert sample("har_drift_rows") == len(heldout_synthetic.windows)
    assert sample("har_drift_features_drifted") == sum(f["drifted"] for f in ans["features"])
    assert sample("har_drift_status", {"status": "ok"}) == 1.0
    assert sample("har_drift_window_seconds") > 3600  # since 07:00 on 2025-03-24


def test_predictions_counter_and_confidence_histogram(
    tmp_path: Path, heldout_synthetic: object
) -> None:
    data = heldout_synthetic
    mon = Monitor(card(), settings(tmp_path), None, worker_id="count")
    pred = data.probs.argmax(1)
    before = {c: sample("har_predictions_total", {"activity": c}) for c in mp.CLASSES}
    hist_before = sample("har_prediction_confidence_count")
    mon.observe(data.windows[:100], data.probs[:100])
    mon.observe(data.windows[100:], data.probs[100:])
    mon.flush()  # what the writer thread does every drain_s
    for i, c in enumerate(mp.CLASSES):
        assert sample("har_predictions_total", {"activity": c}) - before[c] == (pred == i).sum()
    assert sample("har_prediction_confidence_count") - hist_before == len(pred)
    mon.close()


@pytest.mark.slow  # seconds of MLflow or matplotlib: not in `make test-fast`
def test_report_html_renders_the_live_profiles_once_per_cache_period(
    tmp_path: Path, reference_path: Path, heldout_synthetic: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import har.monitoring.monitor as monitor_module

    renders: list[int] = []
    real = monitor_module.report.render_page

    def counting(*args: object, **kw: object) -> str:
        renders.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(monitor_module.report, "render_page", counting)
    s = settings(tmp_path, report_cache_s=60.0)
    mon = Monitor(card(), s, reference_path, worker_id="report")
    mon.observe(broken("rad_s_as_deg_s", heldout_synthetic.windows), heldout_synthetic.probs)
    pages: list[str] = []
    threads = [threading.Thread(target=lambda: pages.append(mon.report_html())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(renders) == 1 and len(set(pages)) == 1
    page = pages[0]
    assert page.startswith("<!doctype html>") and '<span class="badge drift">drift</span>' in page
    assert f"<th>Windows profiled</th><td>{len(heldout_synthetic.windows)}</td>" in page
    mon.report_html(since="2025-03-24T07:00:00Z")  # another interval: rendered anew
    assert len(renders) == 2
    empty = Monitor(card(), settings(tmp_path / "e"), reference_path, worker_id="empty")
    assert '<span class="badge insufficient_data">' in empty.report_html()  # no rows yet
    mon.close()
    with pytest.raises(InputError, match="no reference profile"):
        Monitor(card(), s, None, worker_id="noref").report_html()
