"""End-to-end: a hard kill of a real `bentoml serve` loses at most HAR_PROFILE_FLUSH_S of rows.

Only the HTTP contract is used: windows go to ``POST /predict``, the profiles
are read from ``HAR_PROFILE_DIR`` after the whole process group got SIGKILL
(no shutdown hook runs): each worker's partial file must hold every window
served more than a flush interval before the kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from har.monitoring import profiles, store
from tests.helpers.servers import bentoml_serve

pytestmark = pytest.mark.e2e
FLUSH_S = 1.0


def _predict(url: str, windows: list) -> int:
    req = urllib.request.Request(
        f"{url}/predict",
        json.dumps({"windows": windows}).encode(),
        {"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        return len(json.loads(r.read())["predictions"])


def _rows_on_disk(folder: Path) -> tuple[int, list[store.ProfileFile]]:
    files = store.list_profiles(folder)
    return sum(profiles.row_count(profiles.read_view(f.path)) for f in files), files


def test_sigkill_of_the_server_loses_at_most_the_last_flush_interval(
    bundled_tag, heldout_windows, tmp_path
) -> None:
    folder = tmp_path / "profiles"
    env = {"HAR_PROFILE_FLUSH_S": str(FLUSH_S), "HAR_PROFILE_INTERVAL_S": "300"}
    x = heldout_windows["windows"][:16].tolist()
    with bentoml_serve(env, log_dir=tmp_path, profile_dir=folder) as server:
        before = sum(_predict(server.url, x) for _ in range(5))
        time.sleep(FLUSH_S + 1)
        after = sum(_predict(server.url, x) for _ in range(2))  # may or may not be persisted
        tree = [server.proc.pid] + [c.pid for c in psutil.Process(server.proc.pid).children(True)]
        os.killpg(server.proc.pid, signal.SIGKILL)
        for pid in tree:  # a worker in another process group must not survive either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.proc.wait(10)
    rows, files = _rows_on_disk(folder)
    print(f"windows served {before} + {after}, rows on disk after SIGKILL {rows}")
    assert files and all(f.partial for f in files), "no roll-over, no shutdown: partials only"
    assert before <= rows <= before + after
