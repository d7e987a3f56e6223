"""Calibrated serving and windows kept for labelling on a real `bentoml serve`.

The served model is the over-confident variant of the bundled model
(tests/helpers/overconfident.py: the same classes, logits x 3), imported with its fitted
temperature; a copy that favours the first class is its shadow. A mixed load of held-out
windows (some declared in g and rad/s) is served with ``HAR_SAMPLE_DIR`` on; then:

* the answers are Keras's probabilities with the card's temperature, flagged ``calibrated``;
* the windows kept as ``uncertain`` are exactly the served windows whose calibrated
  confidence was below ``HAR_UNCERTAIN_BELOW``, stored as scored (canonical units, not
  scaled) with the declared units; the shadow's disagreements are kept with its prediction;
* ``python -m har samples export`` writes them with a manifest, and once labelled the file
  is read by the promotion gate as it is.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from har.domain.calibration import apply_temperature
from tests.helpers.overconfident import write_overconfident_model
from tests.helpers.paths import ROOT, read_heldout
from tests.helpers.servers import bentoml_serve

UNCERTAIN_BELOW = 0.9
TO_G_RAD = np.array([1 / 9.80665] * 3 + [math.pi / 180] * 3, np.float32)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        f"{url}/predict", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as r:
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture(scope="module")
def tags(bundled_tag: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(over-confident model, its disagreeing shadow), imported into the session's store."""
    from har.runtime import model_store

    d = tmp_path_factory.mktemp("variants")
    primary = write_overconfident_model(d / "overconfident.keras")
    shadow = write_overconfident_model(d / "shadow.keras", factor=1.0, first_bias=8.0)
    card = model_store.BUNDLED_CARD
    return (
        model_store.import_model(primary, card, name="har-overconfident"),
        model_store.import_model(shadow, card, name="har-favours-pen"),
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_calibrated_answers_and_kept_windows_of_a_mixed_load(tags, tmp_path: Path) -> None:
    from har.lifecycle.gate import load_eval_data
    from har.runtime import model_store

    primary, shadow = tags
    loaded = model_store.load_model(primary)
    cal = loaded.card.calibration
    assert cal is not None and cal.applied and cal.ece_after < cal.ece_before
    h = read_heldout()
    x = h["windows"][:160].astype(np.float32)
    samples = tmp_path / "samples"
    env = {
        "HAR_MODEL_TAG": primary,
        "HAR_SHADOW_MODEL_TAG": shadow,
        "HAR_SAMPLE_DIR": str(samples),
        "HAR_SAMPLE_RANDOM_SHARE": "0",
        "HAR_SAMPLE_DRIFT_SHARE": "0",
        "HAR_SAMPLE_FLUSH_S": "1",
        "HAR_UNCERTAIN_BELOW": str(UNCERTAIN_BELOW),
        "HAR_MAX_BATCH_SIZE": "64",
    }
    answers = []
    with bentoml_serve(env, log_dir=tmp_path, profile_dir=tmp_path / "profiles") as server:
        card = _get(f"{server.url}/model")["card"]
        assert card["calibration"]["temperature"] == pytest.approx(cal.temperature)
        for lo in range(0, 160, 40):  # every other request in g and rad/s
            w = x[lo : lo + 40]
            if lo % 80:
                body = {"windows": (w * TO_G_RAD).tolist(), "units": {"acc": "g", "gyro": "rad/s"}}
            else:
                body = {"windows": w.tolist()}
            answers.append(_post(server.url, body))
        deadline = time.monotonic() + 60
        while _get(f"{server.url}/monitoring/shadow")["windows"] < 160:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.3)
        shadow_answer = _get(f"{server.url}/monitoring/shadow")
        kept_metric = {
            r: _metric(server.url, f'har_samples_kept_total{{reason="{r}"}}')
            for r in ("uncertain", "shadow_disagreement")
        }
    # after the server stopped: every kept window is on disk (flushed at shutdown)
    assert all(a["calibrated"] is True for a in answers)
    got = np.array(
        [
            [p["probabilities"][c] for c in loaded.card.classes]
            for a in answers
            for p in a["predictions"]
        ]
    )
    from har.domain.preprocessing import Preprocessor

    raw = np.asarray(loaded.model(Preprocessor(loaded.card).scale(x), training=False))
    np.testing.assert_allclose(got, apply_temperature(raw, cal.temperature), atol=1e-5)
    conf = got.max(axis=1)
    uncertain = np.flatnonzero(conf < UNCERTAIN_BELOW)
    assert 0 < len(uncertain) < 160
    assert (raw.max(axis=1)[uncertain] >= UNCERTAIN_BELOW).any()  # raw would not have said so

    out = tmp_path / "batch.npz"
    cmd = [sys.executable, "-m", "har", "samples", "export", "--dir", str(samples)]
    run = subprocess.run(
        [*cmd, "--since", "1d", "--reason", "uncertain", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    with np.load(out) as f:
        kept = {k: f[k] for k in f.files}
    assert len(kept["windows"]) == len(uncertain) == kept_metric["uncertain"]
    # stored as scored: canonical units (converted from g and rad/s, not scaled), in order
    order = [int(np.argmin(np.abs(x - w).max(axis=(1, 2)))) for w in kept["windows"]]
    assert sorted(order) == uncertain.tolist()
    np.testing.assert_allclose(kept["windows"], x[order], rtol=1e-5, atol=1e-5)
    declared = ["g" if (i // 40) % 2 else "m/s2" for i in order]
    assert kept["acc_unit"].tolist() == declared
    np.testing.assert_allclose(kept["confidence"], conf[order], atol=1e-5)
    assert set(kept["model"].tolist()) == {primary}
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(order) and {r["reason"].split("+")[0] for r in rows} == {"uncertain"}

    # the shadow's disagreements, with its prediction
    disagreeing = sum(n for row in shadow_answer["disagreement"].values() for n in row.values())
    dis = tmp_path / "disagree.npz"
    run = subprocess.run(
        [*cmd, "--reason", "shadow_disagreement", "--out", str(dis)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    with np.load(dis) as f:
        assert len(f["windows"]) == disagreeing == kept_metric["shadow_disagreement"] > 0
        assert set(f["shadow_prediction"].tolist()) == {"PEN"}
        assert (f["prediction"] != "PEN").all()

    # labelled (here from the held-out set's own labels), the export is evaluation data
    classes = np.asarray(loaded.card.classes)
    for r in rows:
        r["label"] = classes[h["labels"][order[int(r["index"])]]]
    with out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    run = subprocess.run(
        [sys.executable, "-m", "har", "samples", "label", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    data = load_eval_data(out)
    assert data.labels.tolist() == [classes[h["labels"][i]] for i in order]
