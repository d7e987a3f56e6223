"""register / promote / rollback / models through `python -m har` on the embedded store."""

from __future__ import annotations

import json

import pytest

from har.cli import main
from har.lifecycle import aliases, store
from har.lifecycle.register import sha256_of

# every test here drives a real MLflow store (seconds each): not in `make test-fast`
pytestmark = pytest.mark.slow


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def register(capsys, model, card, name) -> str:
    rc, out, _ = run(capsys, "register", model, "--card", card, "--name", name)
    assert rc == 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"{name}/")
    return last.split("/")[1]


def test_register_logs_model_card_profile_metrics_and_tags(capsys, settings, bundled):
    model, card = bundled
    v1 = register(capsys, model, card, "reg")
    c = store.client(settings)
    mv = store.get_version(c, "reg", v1)
    assert mv.tags[store.SHA_TAG] == sha256_of(model)
    assert json.loads(mv.tags["har.classes"]) == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    assert (mv.tags["har.window"], mv.tags["har.sample_rate_hz"]) == ("200", "50")
    assert "seglearn" in mv.tags["har.data_provenance"]
    files = {a.path for a in c.list_artifacts(mv.run_id, store.ARTIFACT_DIR)}
    assert files == {
        "model/model.keras",
        "model/card.json",
        "model/reference_profile.bin",
        "model/model.onnx",  # the ONNX export, its parity evidence in the logged card
    }
    metrics = c.get_run(mv.run_id).data.metrics
    assert metrics["onnx.max_abs_diff"] <= 1e-5
    card_json = json.loads(card.read_text())
    assert metrics["heldout.accuracy"] == pytest.approx(card_json["metrics"]["heldout"]["accuracy"])

    # the same file again: a new version, visibly the same content
    rc, out, _ = run(capsys, "register", model, "--card", card, "--name", "reg")
    assert rc == 0 and f"same file (sha256) as version(s) {v1}" in out
    v2 = out.strip().splitlines()[-1].split("/")[1]
    assert store.get_version(c, "reg", v2).tags[store.SHA_TAG] == mv.tags[store.SHA_TAG]


def test_register_refuses_a_card_that_does_not_fit(capsys, settings, bundled, user_model_files):
    model, _ = bundled
    _, user_card = user_model_files  # 11 classes; the bundled model outputs 7
    rc, _, err = run(capsys, "register", model, "--card", user_card, "--name", "bad")
    assert rc == 2 and "'classes'" in err


def test_gate_refuses_a_worse_model_on_the_default_eval_data(capsys, settings, bundled, degraded):
    model, card = bundled
    good = register(capsys, model, card, "gate")
    bad = register(capsys, degraded, card, "gate")
    rc, out, _ = run(capsys, "promote", "gate", good)  # first holder: the real held-out data
    assert rc == 0 and "none -> " + good in out
    assert "heldout_windows.npz" in out and "accuracy 0.9382" in out

    rc, out, err = run(capsys, "promote", "gate", bad)
    assert rc == 1
    assert f"candidate version {bad}: accuracy 0.1" in out  # uniform softmax: one class
    assert f"holder    version {good}: accuracy 0.9382, macro-F1 0.9428 (372 windows)" in out
    assert "below the holder's" in err
    c = store.client(settings)
    assert aliases.holder(c, "gate", "champion") == good
    assert store.get_version(c, "gate", bad).tags["gate.champion.passed"] == "false"


def test_force_needs_a_reason_and_is_recorded(capsys, settings, bundled, degraded, eval_small):
    model, card = bundled
    good = register(capsys, model, card, "force")
    bad = register(capsys, degraded, card, "force")
    assert run(capsys, "promote", "force", good, "--eval-data", eval_small)[0] == 0

    rc, _, err = run(capsys, "promote", "force", bad, "--force", "--eval-data", eval_small)
    assert rc == 2 and "--force needs --reason" in err
    c = store.client(settings)
    assert aliases.holder(c, "force", "champion") == good

    rc, out, _ = run(
        capsys, "promote", "force", bad, "--force", "--reason", "drill", "--eval-data", eval_small
    )
    assert rc == 0 and "forced past the gate" in out
    tags = store.get_version(c, "force", bad).tags
    assert tags["force.champion.reason"] == "drill"
    assert tags["force.champion.by"] == store.user()
    assert aliases.holder(c, "force", "champion") == bad


def test_equal_model_promoted_then_rolled_back(capsys, settings, bundled, eval_small):
    model, card = bundled
    v1 = register(capsys, model, card, "roll")
    v2 = register(capsys, model, card, "roll")
    for v in (v1, v2):
        rc, out, _ = run(capsys, "promote", "roll", v, "--eval-data", eval_small)
        assert rc == 0 and "passed the gate" in out
    c = store.client(settings)
    assert [e["version"] for e in aliases.history(c, "roll", "champion")] == [v1, v2]

    rc, out, _ = run(capsys, "rollback", "roll")
    assert rc == 0 and f"version {v2} -> {v1}" in out
    assert aliases.holder(c, "roll", "champion") == v1
    assert [e["version"] for e in aliases.history(c, "roll", "champion")] == [v1]
    rc, _, err = run(capsys, "rollback", "roll")
    assert rc == 2 and "no earlier holder" in err

    rc, out, _ = run(capsys, "models", "roll")
    assert rc == 0
    rows = {line.split()[1]: line.split() for line in out.splitlines()[1:]}
    assert rows[v1][2] == "champion" and rows[v2][2] == "-"  # the aliases column
    assert rows[v1][3] == store.get_version(c, "roll", v1).run_id
    assert rows[v1][-6:] == ["champion:", "acc", rows[v1][-4], "f1", rows[v1][-2], "passed"]
    assert run(capsys, "models", "missing")[0] == 2


def test_other_alias_and_unknown_version(capsys, settings, bundled, eval_small):
    model, card = bundled
    v = register(capsys, model, card, "alias")
    rc, _, _ = run(capsys, "promote", "alias", v, "--alias", "staging", "--eval-data", eval_small)
    assert rc == 0
    c = store.client(settings)
    assert aliases.holder(c, "alias", "staging") == v
    assert aliases.holder(c, "alias", "champion") is None
    rc, _, err = run(capsys, "promote", "alias", "99", "--eval-data", eval_small)
    assert rc == 2 and "not in the registry" in err


def test_training_run_logs_params_folds_and_confusion_images(capsys, settings, bundled):
    model, card = bundled
    rc, out, _ = run(
        capsys, "register", model, "--card", card, "--name", "trained", "--training-run"
    )
    assert rc == 0
    c = store.client(settings)
    mv = store.get_version(c, "trained", out.strip().splitlines()[-1].split("/")[1])
    run_data = c.get_run(mv.run_id).data
    assert run_data.params["config.epochs"] == "25" and run_data.params["seed"] == "0"
    folds = c.get_metric_history(mv.run_id, "fold.accuracy")
    assert [m.step for m in folds] == [0, 1, 2, 3, 4]
    images = {a.path for a in c.list_artifacts(mv.run_id)}
    assert {"confusion_matrix_lso.png", "confusion_matrix_heldout.png"} <= images
