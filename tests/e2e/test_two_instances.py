"""Two `bentoml serve` instances (as two replicas would be) writing whylogs profiles into
one shared HAR_PROFILE_DIR: drift asked of either instance counts the windows both served
(deploy/k8s mounts one ReadWriteMany volume there for every replica)."""

from __future__ import annotations

import json
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from har.monitoring import profiles, store
from tests.helpers.servers import ROOT, bentoml_serve

HELDOUT = ROOT / "tests" / "fixtures" / "heldout_windows.npz"
#: Profiles reach the shared folder at each roll-over (HAR_PROFILE_INTERVAL_S).
INTERVAL_S = 2


def _predict(url: str, windows: np.ndarray) -> None:
    body = json.dumps({"windows": windows.tolist()}).encode()
    req = urllib.request.Request(f"{url}/predict", body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200
        assert len(json.loads(r.read())["predictions"]) == len(windows)


def _drift_rows(url: str) -> int:
    with urllib.request.urlopen(f"{url}/monitoring/drift", timeout=120) as r:
        return int(json.loads(r.read())["rows"])


@pytest.mark.e2e
@pytest.mark.slow
def test_drift_from_either_instance_counts_both_instances_windows(
    bundled_tag: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-profiles"
    env = {"HAR_PROFILE_DIR": str(shared), "HAR_PROFILE_INTERVAL_S": str(INTERVAL_S)}
    with np.load(HELDOUT) as f:
        windows = f["windows"].astype(np.float32)
    n_a, n_b = 70, 45  # different counts: the sum tells which windows were counted
    with ExitStack() as stack:
        a = stack.enter_context(bentoml_serve(env, log_dir=tmp_path))
        b = stack.enter_context(bentoml_serve(env, log_dir=tmp_path))
        assert a.http_port != b.http_port
        for i in range(0, n_a, 35):
            _predict(a.url, windows[i : i + 35])
        for i in range(0, n_b, 15):
            _predict(b.url, windows[100 + i : 100 + i + 15])

        def written() -> int:
            files = store.list_profiles(shared)
            return sum(profiles.row_count(profiles.read_view(f.path)) for f in files)

        deadline = time.monotonic() + 60
        while written() < n_a + n_b:  # both instances rolled their profiles over
            assert time.monotonic() < deadline, f"{written()} rows on disk"
            time.sleep(0.5)
        writers = {f.writer for f in store.list_profiles(shared)}
        assert len(writers) == 2, writers
        assert _drift_rows(a.url) == n_a + n_b
        assert _drift_rows(b.url) == n_a + n_b
