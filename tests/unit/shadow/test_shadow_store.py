"""ShadowStore: API workers' shadow counts in one folder, summed by whichever worker answers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from har.shadow.compare import BUCKET_S, FLUSH_S, RETENTION_S, ShadowStats
from har.shadow.store import FILE_SPAN_S, ShadowStore, models_key
from tests.unit.shadow.test_shadow_compare import Clock, at, onehot

T0 = 1_800_000_000.0  # a multiple of BUCKET_S


def worker(
    folder: Path, writer: str, clock: Clock, shadow: str = "s:1", classes: int = 2
) -> ShadowStats:
    """One API worker's comparison of served "p:1" and ``shadow``, sharing ``folder``."""
    names = ["a", "b", "c"][:classes]
    store = ShadowStore(
        folder, "p:1", shadow, writer=writer, bucket_s=BUCKET_S, retention_s=RETENTION_S
    )
    stats = ShadowStats(names, names, model=shadow, primary_model="p:1", store=store, clock=clock)
    stats.min_windows = 1
    return stats


def test_every_worker_answers_for_all_workers(tmp_path: Path) -> None:
    clock = Clock(T0)
    w0, w1 = worker(tmp_path, "api0.11", clock), worker(tmp_path, "api1.12", clock)
    w0.record(onehot([0, 0, 1], 2), onehot([0, 1, 1], 2))  # a->b once
    clock.t += 3 * BUCKET_S
    w1.record(onehot([1, 1], 2), onehot([1, 1], 2))
    w1.record_dropped(4, "queue_full")
    a0, a1 = w0.answer(), w1.answer()
    for a in (a0, a1):
        assert (a["windows"], a["dropped"], a["workers"]) == (5, 4, 2), a
        assert a["agreement"] == pytest.approx(4 / 5)
        assert a["disagreement"] == {"a": {"b": 1}}
        assert a["dropped_by_reason"]["queue_full"] == 4
    assert {k: v for k, v in a0.items() if k != "interval"} == {
        k: v for k, v in a1.items() if k != "interval"
    }
    # intervals select the other worker's buckets too
    early = w1.answer(until=at(T0 + BUCKET_S - 1))
    assert (early["windows"], early["dropped"], early["workers"]) == (3, 0, 1)


def test_another_model_pair_in_the_same_folder_is_not_summed(tmp_path: Path) -> None:
    clock = Clock(T0)
    served = worker(tmp_path, "api0.11", clock)
    other = worker(tmp_path, "api1.12", clock, shadow="s:2")
    other.record(onehot([0] * 6, 2), onehot([0] * 6, 2))
    served.record(onehot([1], 2), onehot([1], 2))
    assert (served.answer()["windows"], served.answer()["workers"]) == (1, 1)
    assert models_key("p:1", "s:1") != models_key("p:1", "s:2")


def test_a_killed_workers_counts_stay_for_later_intervals(tmp_path: Path) -> None:
    clock = Clock(T0)
    gone = worker(tmp_path, "api0.11", clock)
    gone.record(onehot([0, 1], 2), onehot([0, 1], 2))
    del gone  # no close, no flush: what it wrote at its last change stays
    clock.t = T0 + 60
    restarted = worker(tmp_path, "api0.13", clock)
    assert restarted.answer()["windows"] == 0  # default interval: since this worker started
    back = restarted.answer(since=at(T0))
    assert (back["windows"], back["workers"]) == (2, 1)


def test_under_an_event_loop_writes_follow_within_flush_s(tmp_path: Path) -> None:
    clock = Clock(T0)
    w0, w1 = worker(tmp_path, "api0.11", clock), worker(tmp_path, "api1.12", clock)

    async def main() -> tuple[int, int, int]:
        w0.record(onehot([0, 1], 2), onehot([0, 1], 2))
        w0.record(onehot([0], 2), onehot([0], 2))  # both in one scheduled write
        at_once = w1.answer()["windows"]  # the write waits for the loop
        await asyncio.sleep(FLUSH_S + 0.5)
        later = w1.answer()["windows"]
        w0.record(onehot([1], 2), onehot([1], 2))
        w0.flush()  # as Shadow.close does: now, not after FLUSH_S
        return at_once, later, w1.answer()["windows"]

    assert asyncio.run(main()) == (0, 3, 4)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.endswith("_api0.11.npz"), files


def test_old_files_are_deleted_and_unreadable_ones_skipped(tmp_path: Path) -> None:
    clock = Clock(T0)
    w0, w1 = worker(tmp_path, "api0.11", clock), worker(tmp_path, "api1.12", clock)
    pair = models_key("p:1", "s:1")
    now_hour = int(T0) // FILE_SPAN_S * FILE_SPAN_S
    # written long ago by a worker now gone; the store prunes by the wall clock
    old = tmp_path / f"har-shadow_{pair}_{FILE_SPAN_S}_api9.9.npz"
    old.write_bytes(b"old")
    broken = tmp_path / f"har-shadow_{pair}_{now_hour}_api5.5.npz"
    broken.write_bytes(b"not an npz file")
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("kept")
    w0.record(onehot([0], 2), onehot([0], 2))
    assert not old.exists() and broken.exists() and unrelated.exists()
    a = w1.answer()
    assert (a["windows"], a["workers"]) == (1, 1)  # the broken file is skipped, not a 500


def test_a_folder_that_cannot_be_written_leaves_the_worker_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(T0)
    folder = tmp_path / "shared"
    w0 = worker(folder, "api0.11", clock)
    folder.rmdir()
    folder.write_text("a file where the folder was")
    w0.record(onehot([0, 1], 2), onehot([0, 1], 2))  # the write fails: logged, not raised
    assert "cannot write" in caplog.text
    assert w0.answer()["windows"] == 2  # its own counts, from memory


def test_build_shares_counts_in_the_profile_folder(tmp_path: Path) -> None:
    from har.settings import Settings
    from har.shadow import Shadow
    from tests.helpers.cards import make_card

    async def infer(x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 2), np.float32)

    settings = Settings(profile_dir=tmp_path)
    c = make_card(["a", "b"], name="t", window=20, sample_rate_hz=10)
    shadow = Shadow.build(settings, c, "p:1", c, "s:1", infer, metrics=False, worker_id="api3")
    assert shadow.stats.store is not None
    assert shadow.stats.store.folder == tmp_path / "shadow"
    assert shadow.stats.store.writer.startswith(f"api3.{os.getpid()}.")  # .<host>
