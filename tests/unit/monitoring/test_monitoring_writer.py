"""har.monitoring.writer (through Monitor): every observed row in exactly one file, partials."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from har.monitoring import Monitor, profiles, store
from tests.helpers.monitoring import card, files_rows, mp, sample, settings


def _wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_every_observed_row_is_written_once_across_rollovers_and_workers(tmp_path: Path) -> None:
    s = settings(tmp_path, profile_interval_s=0.08, profile_flush_s=0.03)
    mons = [Monitor(card(), s, None, worker_id=w) for w in ("api-1", "api-2")]
    data = mp.synthetic(seed=5, n_recordings=4, windows_per_recording=6)
    profiled_before = sample("har_profile_rows_total")
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
    rows, files = files_rows(s.profile_dir)
    assert rows == observed == sum(m.rows_observed for m in mons)
    assert sum(m.rows_dropped for m in mons) == 0
    assert not any(f.partial for f in files), "close removes the partial files"
    writers = {f.writer for f in files}
    assert writers == {store.writer_name(w, os.getpid()) for w in ("api-1", "api-2")}
    assert all(sum(f.writer == w for f in files) >= 2 for w in writers), "expected roll-overs"
    assert not list(s.profile_dir.glob(".*.tmp"))
    assert sample("har_profile_rows_total") - profiled_before == observed
    merged = profiles.merge_views(profiles.read_view(f.path) for f in files)
    assert profiles.row_count(merged) == observed
    assert profiles.classes_of(merged) == list(card().classes)


def test_a_full_queue_drops_and_counts_rows_without_blocking(tmp_path: Path) -> None:
    s = settings(tmp_path, profile_queue_size=50)
    mon = Monitor(card(), s, None, worker_id="full")  # writer not started: nothing drains
    data = mp.synthetic(seed=6, n_recordings=2, windows_per_recording=10)
    dropped_before = sample("har_profile_rows_dropped_total")
    t0 = time.perf_counter()
    for _ in range(10):
        mon.observe(data.windows, data.probs)  # 20 windows each
    elapsed = time.perf_counter() - t0
    assert mon.rows_observed == 200
    assert mon.rows_dropped == 160  # 2 calls fit in 50 rows, 8 do not
    assert sample("har_profile_rows_dropped_total") - dropped_before == 160
    assert elapsed < 1.0
    mon.close()
    rows, _ = files_rows(s.profile_dir)
    assert rows == mon.rows_observed - mon.rows_dropped == 40
    mon.observe(data.windows, data.probs)  # after close: counted, not written
    assert mon.rows_dropped == 180


def test_observe_leaves_features_and_whylogs_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request path only queues arrays: features, whylogs and metrics run on the writer."""
    import har.monitoring.writer as writer_module

    calls: list[str] = []
    real_rows, real_track = writer_module.feature_rows, profiles.RollingProfile.track

    def rows_spy(*args: object, **kw: object) -> np.ndarray:
        calls.append(threading.current_thread().name)
        return real_rows(*args, **kw)

    def track_spy(self: profiles.RollingProfile, rows: np.ndarray) -> None:
        calls.append(threading.current_thread().name)
        real_track(self, rows)

    monkeypatch.setattr(writer_module, "feature_rows", rows_spy)
    monkeypatch.setattr(profiles.RollingProfile, "track", track_spy)
    # the drift refresher runs too, and must not profile either
    s = settings(tmp_path, drift_every_s=0.01)
    mon = Monitor(card(), s, None, worker_id="thread", drain_s=0.05)
    mon.start()
    data = mp.synthetic(seed=7, n_recordings=1, windows_per_recording=40)
    for i in range(40):
        mon.observe(data.windows[i : i + 1], data.probs[i : i + 1], sequence_key="s")
    assert threading.current_thread().name not in calls
    _wait_for(lambda: mon.pending_rows >= 40)
    mon.close()
    assert mon.rows_written == 40
    assert calls and set(calls) == {f"har-monitor-{mon.writer}"}


def test_the_open_interval_is_persisted_to_one_partial_file_and_counted_once(
    tmp_path: Path,
) -> None:
    """What a hard kill leaves: the rows of the last flush in one partial file, no pile-up;
    after a clean close the final file alone holds them."""
    s = settings(tmp_path, profile_flush_s=0.05)
    mon = Monitor(card(), s, None, worker_id="crash", drain_s=0.05)
    mon.start()
    data = mp.synthetic(seed=9, n_recordings=3, windows_per_recording=10)
    mon.observe(data.windows[:12], data.probs[:12], sequence_key="a")
    _wait_for(lambda: files_rows(s.profile_dir)[0] == 12)
    mon.observe(data.windows[12:], data.probs[12:], sequence_key="a")
    _wait_for(lambda: files_rows(s.profile_dir)[0] == 30)
    # several flushes later: still one file, the partial, overwritten in place
    time.sleep(0.2)
    on_disk = sorted(p.name for p in s.profile_dir.iterdir())
    assert on_disk == [store.partial_path(s.profile_dir, _start(mon), mon.writer).name]
    rows, files = files_rows(s.profile_dir)
    assert rows == 30 and [f.partial for f in files] == [True]
    view = profiles.read_view(files[0].path)
    assert profiles.classes_of(view) == list(card().classes)
    ids, counts = np.unique(data.probs.argmax(1), return_counts=True)
    assert profiles.int_counts(view, "pred_class") == dict(
        zip(ids.tolist(), counts.tolist(), strict=True)
    )
    # drift from this worker: open interval from memory, its own partial not added again
    assert mon.drift()["rows"] == 30
    # another worker's view of the same folder counts the partial once
    reader = Monitor(card(), s, None, worker_id="reader")
    assert reader.drift(since="1h")["rows"] == 30
    reader.close()
    mon.close()
    rows, files = files_rows(s.profile_dir)
    assert rows == 30 and [f.partial for f in files] == [False]
    assert len(list(s.profile_dir.iterdir())) == 1


def _start(mon: Monitor) -> datetime:
    return mon._writer.interval_start


def test_a_roll_over_replaces_the_partial_by_the_final_file(tmp_path: Path) -> None:
    s = settings(tmp_path, profile_interval_s=0.3, profile_flush_s=0.05)
    mon = Monitor(card(), s, None, worker_id="roll", drain_s=0.05)
    mon.start()
    data = mp.synthetic(seed=10, n_recordings=1, windows_per_recording=8)
    mon.observe(data.windows, data.probs)
    _wait_for(lambda: any(not f.partial for f in store.list_profiles(s.profile_dir)))
    rows, files = files_rows(s.profile_dir)
    assert rows == 8 and [f.partial for f in files] == [False]
    assert not list(s.profile_dir.glob(f"*_{store.PARTIAL}_*"))
    mon.close()
    assert files_rows(s.profile_dir)[0] == 8
