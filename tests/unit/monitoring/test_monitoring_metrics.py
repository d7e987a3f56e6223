"""har.monitoring.metrics: lazily created, multiprocess-safe, and what the alert rules use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from har.monitoring.metrics import CONFIDENCE_BUCKETS
from tests.helpers.metrics import exported_names
from tests.helpers.paths import ROOT

ALERT_RULES = ROOT / "deploy" / "prometheus" / "alert-rules.yml"


@pytest.mark.slow  # seconds of MLflow or matplotlib: not in `make test-fast`
def test_metrics_are_created_lazily_and_land_in_the_multiprocess_dir(tmp_path: Path) -> None:
    """Like a BentoML worker: PROMETHEUS_MULTIPROC_DIR set, metrics read back by the
    MultiProcessCollector that BentoML's /metrics uses; the refresher publishes."""
    prom = tmp_path / "prom"
    prom.mkdir()
    script = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        import har.monitoring
        assert "prometheus_client" not in sys.modules, "imported at import time"
        from har.domain.card import ModelCard, Scaler
        from har.settings import Settings
        card = ModelCard(name="t", classes=["a", "b"], window=200, hop=100,
                         sample_rate_hz=50, scaler=Scaler(mean=[0] * 6, scale=[1] * 6))
        s = Settings(profile_dir={str(tmp_path / "p")!r}, drift_every_s=0.05,
                     drift_window_s=120)
        mon = har.monitoring.Monitor(card, s, None, worker_id="mp", drain_s=0.05)
        mon.start()
        mon.observe(np.ones((3, 200, 6), np.float32), np.array([[.9, .1]] * 3, np.float32))
        time.sleep(0.5)
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
    assert "har_drift_rows 3.0" in out.stdout
    assert "har_drift_window_seconds 120.0" in out.stdout
    assert list(prom.glob("*.db")), "metrics must be written to the multiprocess dir"


def test_exported_metric_names() -> None:
    """The names dashboards and alert rules rely on (renaming one breaks them)."""
    names = set(exported_names())
    for n in (
        "har_predictions_total",
        "har_prediction_confidence_bucket",
        "har_profile_rows_total",
        "har_profile_rows_dropped_total",
        "har_profile_files_total",
        "har_drift_score",
        "har_drift_recent_score",
        "har_drift_threshold",
        "har_drift_status",
        "har_drift_rows",
        "har_drift_window_seconds",
        "har_drift_computed_timestamp_seconds",
    ):
        assert n in names, n


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


def _samples(histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in histogram.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@pytest.mark.parametrize("values", [[], [0.5], "edges", "random"])
def test_observe_many_counts_like_observe_one_by_one(values) -> None:
    """Same buckets, count and sum as prometheus_client's own observe, bounds included."""
    import numpy as np
    from prometheus_client import CollectorRegistry, Histogram

    from har.monitoring.writer import observe_many

    if values == "edges":  # exactly on bounds, below the first, above the last finite one
        values = [*CONFIDENCE_BUCKETS, 0.0, 0.05, 1.5, 0.95, 0.95]
    elif values == "random":
        values = np.random.default_rng(0).uniform(0, 1, 5000).tolist()
    one, many = (
        Histogram("c", "x", buckets=CONFIDENCE_BUCKETS, registry=CollectorRegistry())
        for _ in range(2)
    )
    for v in values:
        one.observe(v)
    observe_many(many, np.asarray(values))
    expected, got = _samples(one), _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    if len(values) > 1:
        assert got[("c_bucket", "0.95")] > got[("c_bucket", "0.9")]  # the buckets were used


def test_observe_many_without_the_internals_observes_one_by_one() -> None:
    import numpy as np

    from har.monitoring.writer import observe_many

    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, v: float) -> None:
            self.seen.append(v)

    h = Plain()
    observe_many(h, np.array([0.25, 0.75]))
    assert h.seen == [0.25, 0.75]
