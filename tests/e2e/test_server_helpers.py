"""The shared process helpers (``tests/helpers/servers.py``) with real, tiny processes."""

from __future__ import annotations

import sys
import time
import urllib.request

import psutil
import pytest

from tests.helpers.servers import free_port, home_sharing_store, running

pytestmark = pytest.mark.e2e


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_running_waits_for_ready_and_stops_the_whole_process_group(tmp_path):
    port, pid_file = free_port(), tmp_path / "child.pid"
    script = (
        f"sleep 300 & echo $! > {pid_file}; "
        f"exec {sys.executable} -m http.server {port} --bind 127.0.0.1"
    )
    url = f"http://127.0.0.1:{port}/"
    with running(["sh", "-c", script], ready_url=url, log=tmp_path / "app.log") as app:
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
        child = int(pid_file.read_text())
        assert not _gone(child)
    assert app.proc.returncode is not None
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child), "a child of the server outlived its stop"


def test_a_process_that_exits_before_ready_raises_with_its_log(tmp_path):
    cmd = [sys.executable, "-c", "print('boom at start-up'); raise SystemExit(3)"]
    url = f"http://127.0.0.1:{free_port()}/"
    with (
        pytest.raises(RuntimeError, match=r"(?s)exited with 3.*boom at start-up"),
        running(cmd, ready_url=url, log=tmp_path / "app.log", timeout=30),
    ):
        pass


def test_home_sharing_store_links_the_model_store(tmp_path):
    store = tmp_path / "home" / "models"
    (store / "m" / "v1").mkdir(parents=True)
    home = home_sharing_store(tmp_path / "server-home", store)
    assert (home / "models" / "m" / "v1").is_dir()
    assert home_sharing_store(home, store) == home  # a second call keeps the link
    assert (home / "models").resolve() == store.resolve()
