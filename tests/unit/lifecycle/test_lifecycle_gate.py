"""The gate's pieces: evaluation data, macro-F1, the verdict with tolerances, settings."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from har.domain.errors import InputError
from har.lifecycle.gate import Figures, decide, load_eval_data, macro_f1
from har.lifecycle.store import parse_model_uri
from har.settings import Settings


def test_eval_data_integer_labels_are_named_by_the_files_classes(tmp_path):
    p = tmp_path / "e.npz"
    np.savez(p, windows=np.zeros((3, 200, 6)), labels=[2, 0, 1], classes=["a", "b", "c"])
    assert load_eval_data(p).labels.tolist() == ["c", "a", "b"]
    np.savez(p, windows=np.zeros((2, 200, 6)), labels=["x", "y"])
    assert load_eval_data(p).labels.tolist() == ["x", "y"]
    np.savez(p, windows=np.zeros((2, 200, 6)), labels=[0, 1])
    with pytest.raises(InputError, match="'classes'"):
        load_eval_data(p)
    np.savez(p, windows=np.zeros((2, 200, 6)))
    with pytest.raises(InputError, match="'labels'"):
        load_eval_data(p)


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    true = rng.choice(list("abcd"), 200)
    pred = np.where(rng.random(200) < 0.6, true, rng.choice(list("abce"), 200))
    expected = f1_score(true, pred, labels=sorted(set(true)), average="macro")
    assert macro_f1(true, pred) == pytest.approx(expected)


def test_decide_applies_each_tolerance():
    holder = Figures("1", 0.90, 0.90, 100)
    assert decide(
        Figures("2", 0.895, 0.895, 100), holder, accuracy_tol=0.01, macro_f1_tol=0.01
    ).passed
    worse = decide(Figures("2", 0.85, 0.895, 100), holder, accuracy_tol=0.01, macro_f1_tol=0.01)
    assert not worse.passed and len(worse.reasons) == 1 and "accuracy 0.8500" in worse.reasons[0]
    assert not decide(Figures("2", 0.9, 0.8, 100), holder, accuracy_tol=0.2, macro_f1_tol=0).passed
    assert decide(Figures("2", 0.0, 0.0, 100), None, accuracy_tol=0, macro_f1_tol=0).passed


def test_model_uri_setting_and_parsing():
    assert Settings(model_uri="").model_uri is None
    assert parse_model_uri("models:/har@champion").alias == "champion"
    ref = parse_model_uri("models:/har/12")
    assert (ref.name, ref.version, ref.alias) == ("har", "12", None)
    for bad in ("models:/har", "runs:/abc/model", "models:/a/b/c"):
        with pytest.raises(ValidationError, match="models:/NAME@ALIAS"):
            Settings(model_uri=bad)
        with pytest.raises(InputError):
            parse_model_uri(bad)


def test_default_store_is_embedded_in_the_project():
    from har.lifecycle.store import local_store_dir
    from har.settings import PROJECT_ROOT

    uri = Settings.model_fields["mlflow_tracking_uri"].default
    assert local_store_dir(uri) == PROJECT_ROOT / "mlruns"
    assert local_store_dir("http://127.0.0.1:5000") is None
