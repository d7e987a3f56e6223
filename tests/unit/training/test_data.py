"""The watch data set as the project loads it: units, subjects, labels, files made from it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from har.domain.recordings import read_csv_recording, read_garmin_pair
from har.training import data as dataset
from har.training import demo_data
from tests.helpers.paths import PRODUCTION

CLASSES = ("PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW")


@pytest.fixture(scope="module")
def ds() -> dataset.WatchDataset:
    return dataset.load_watch_dataset()


@pytest.fixture(scope="module")
def raw() -> dict:
    return np.load(dataset.dataset_path(), allow_pickle=True).item()


def test_data_file_found_through_package_metadata():
    p = dataset.dataset_path()
    assert p.name == "watch_dataset.npy" and p.parent.name == "data"
    keys = np.load(p, allow_pickle=True).item().keys()
    assert {"X", "y", "subject", "side", "y_labels"} <= set(keys)


def test_subjects_labels_and_sizes(ds):
    assert ds.classes == CLASSES
    assert len(ds.recordings) == 140
    assert ds.subjects == list(range(1, 11))
    per_subject = np.bincount([r.subject for r in ds.recordings])[1:]
    assert per_subject.tolist() == [14] * 10  # 7 exercises x 2 arms
    per_label = np.bincount([r.label for r in ds.recordings])
    assert per_label.tolist() == [20] * 7
    assert {r.side for r in ds.recordings} == {0, 1}
    assert sum(len(r.recording) for r in ds.recordings) == 244_102
    assert len(ds.of_subjects(dataset.HELDOUT_SUBJECTS)) == 28


def test_converted_to_canonical_units(ds, raw):
    rec = ds.recordings[5].recording
    x = np.asarray(raw["X"][5])
    np.testing.assert_allclose(rec.values[:, :3], x[:, :3] * 9.80665)
    np.testing.assert_allclose(rec.values[:, 3:], np.degrees(x[:, 3:]))
    np.testing.assert_allclose(rec.time, np.arange(len(x)) / 50.0)


def _gravity(values: np.ndarray) -> float:
    """Median acceleration magnitude (m/s²) while the arm barely turns (< 10 deg/s)."""
    still = np.linalg.norm(values[:, 3:], axis=1) < 10.0
    assert still.sum() >= 1000
    return float(np.median(np.linalg.norm(values[still, :3], axis=1)))


def _acc_magnitude(values: np.ndarray) -> float:
    """Median acceleration magnitude: gravity plus the exercise's own motion."""
    return float(np.median(np.linalg.norm(values[:, :3], axis=1)))


def test_gravity_at_rest_is_about_9_8_m_s2(ds):
    values = np.concatenate([r.recording.values for r in ds.recordings])
    g = _gravity(values)
    assert 9.3 < g < 10.3, g  # m/s², not ≈1 (g) and not ≈0.01 (milli-g confusion)


def test_materialise_raw_round_trips(tmp_path, ds, monkeypatch):
    few = dataset.WatchDataset(ds.recordings[:3], ds.classes)
    monkeypatch.setattr(dataset, "load_watch_dataset", lambda: few)
    index = dataset.materialise_raw(tmp_path / "raw")
    table = pd.read_csv(index)
    assert table.columns.tolist() == ["file", "subject", "side", "label"]
    assert len(table) == 3
    first = ds.recordings[0]
    assert table.loc[0, "label"] == CLASSES[first.label]
    assert table.loc[0, "subject"] == first.subject
    back = read_csv_recording(tmp_path / "raw" / table.loc[0, "file"])
    np.testing.assert_allclose(back.values, first.recording.values, atol=1e-6)
    np.testing.assert_allclose(back.time, first.recording.time, atol=1e-6)


def test_production_data_is_reproducible_and_small(tmp_path):
    written = demo_data.make_production_data(tmp_path)
    names = sorted(p.name for p in written)
    committed = sorted(p.name for p in PRODUCTION.iterdir() if p.is_file() and p.suffix != ".md")
    assert names == committed
    for p in written:
        assert p.read_bytes() == (PRODUCTION / p.name).read_bytes(), p.name
    assert sum(p.stat().st_size for p in written) < 3 * 1024 * 1024


def test_production_session_matches_its_truth():
    truth = json.loads((PRODUCTION / "session_canonical_100hz.truth.json").read_text())
    assert truth["subject"] in dataset.HELDOUT_SUBJECTS
    segs = truth["segments"]
    assert [s["activity"] for s in segs] == list(demo_data.SESSION_EXERCISES)
    for a, b in zip(segs, segs[1:], strict=False):
        assert a["end"] == pytest.approx(b["start"])
    rec = read_csv_recording(PRODUCTION / "session_canonical_100hz.csv")
    step = np.diff(rec.time)
    assert np.median(step) == pytest.approx(0.01)
    gaps = np.flatnonzero(step > 1.0)
    assert len(gaps) == 1  # exactly one hole, of about 10 s
    assert step[gaps[0]] == pytest.approx(10.0, abs=0.05)
    assert rec.time[gaps[0]] < truth["gap"]["start"] < rec.time[gaps[0] + 1]
    assert rec.time[-1] == pytest.approx(segs[-1]["end"] - 0.01)
    assert 8.0 < _acc_magnitude(rec.values) < 13.0  # m/s², not g or milli-g


def test_production_garmin_pair_reads_back():
    rec = read_garmin_pair(
        PRODUCTION / "session-accelerometer_data.csv", PRODUCTION / "session-gyroscope_data.csv"
    )
    truth = json.loads((PRODUCTION / "session-garmin.truth.json").read_text())
    assert truth["subject"] in dataset.HELDOUT_SUBJECTS
    assert rec.duration_s == pytest.approx(truth["segments"][-1]["end"] - 0.01, abs=0.02)
    assert np.median(np.diff(rec.time)) == pytest.approx(0.01, abs=1e-3)
    assert 8.0 < _acc_magnitude(rec.values) < 13.0  # milli-g in the file, m/s² once read


def test_window_example_has_the_model_shape():
    body = json.loads((PRODUCTION / "window.json").read_text())
    assert set(body) == {"windows"}
    w = np.asarray(body["windows"], np.float64)
    assert w.shape == (1, 200, 6)
    assert np.isfinite(w).all()
