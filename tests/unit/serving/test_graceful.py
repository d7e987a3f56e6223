"""har.serving.graceful: a stopping model worker keeps serving while API workers hold the lease."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
import uvicorn

from har.serving import graceful


@pytest.fixture
def drain(monkeypatch, tmp_path):
    """This process as a model worker draining for callers of ``tmp_path / lease``."""
    graceful.install()
    path = tmp_path / graceful.LEASE_NAME
    monkeypatch.setitem(graceful._state, "drain_timeout_s", 30.0)
    monkeypatch.setitem(graceful._state, "lease", path)
    return path


def _server() -> uvicorn.Server:
    async def app(scope, receive, send):  # pragma: no cover - never served
        return None

    return uvicorn.Server(uvicorn.Config(app))


def _tick(server: uvicorn.Server) -> bool:
    """One of uvicorn's 0.1 s ticks: whether the server now exits."""
    return bool(asyncio.run(server.on_tick(1)))


def test_lease_holders_keep_callers_gone_false_until_released(tmp_path):
    path = tmp_path / "lease"
    a, b = graceful.CallerLease(path), graceful.CallerLease(path)  # two API workers
    assert not graceful.callers_gone(path)
    a.release()
    assert not graceful.callers_gone(path)
    b.release()
    b.release()  # idempotent
    assert graceful.callers_gone(path)


def test_a_lease_held_by_another_process_counts_until_it_exits(tmp_path):
    path = tmp_path / "lease"
    code = (
        "import sys, time; from pathlib import Path; from har.serving.graceful import CallerLease; "
        f"CallerLease(Path({str(path)!r})); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert not graceful.callers_gone(path)
        proc.kill()  # any exit releases it, even SIGKILL
        proc.wait(10)
        assert graceful.callers_gone(path)
    finally:
        proc.kill()


def test_sigterm_waits_for_the_callers_then_stops(drain):
    server = _server()
    lease = graceful.CallerLease(drain)
    server.handle_exit(signal.SIGTERM, None)
    assert not server.should_exit  # noted, not acted on
    server.handle_exit(signal.SIGTERM, None)  # the supervisor's copy of the signal
    assert not _tick(server) and not server.should_exit
    lease.release()
    assert _tick(server) and server.should_exit
    assert server._captured_signals == [signal.SIGTERM]  # uvicorn re-raises it at the end


def test_the_wait_is_bounded(drain, monkeypatch):
    monkeypatch.setitem(graceful._state, "drain_timeout_s", 0.05)
    server = _server()
    lease = graceful.CallerLease(drain)
    server.handle_exit(signal.SIGTERM, None)
    assert not _tick(server)
    time.sleep(0.1)
    assert _tick(server)
    lease.release()


def test_a_second_ctrl_c_stops_at_once(drain):
    server = _server()
    lease = graceful.CallerLease(drain)
    server.handle_exit(signal.SIGINT, None)
    assert not server.should_exit
    server.handle_exit(signal.SIGINT, None)
    assert server.should_exit
    lease.release()


def test_workers_that_serve_no_callers_stop_as_uvicorn_does(monkeypatch):
    graceful.install()
    monkeypatch.setitem(graceful._state, "drain_timeout_s", None)  # an API worker
    server = _server()
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit


def test_only_a_dependency_worker_outlives_its_callers(monkeypatch):
    from bentoml._internal.context import server_context

    monkeypatch.setitem(graceful._state, "drain_timeout_s", None)
    monkeypatch.setattr(server_context, "service_type", "entry_service")
    graceful.outlive_callers()  # `bentoml serve --development`, or the API worker
    assert graceful._state["drain_timeout_s"] is None
    monkeypatch.setattr(server_context, "service_type", "service")
    graceful.outlive_callers(7.0)
    assert graceful._state["drain_timeout_s"] == 7.0


def test_lease_path_is_beside_the_model_sockets(monkeypatch):
    from bentoml._internal.container import BentoMLContainer

    mapping = {"har-model": "unix:///tmp/bentoml-uds-abc/123.sock", "har": "http://x:3000"}
    monkeypatch.setattr(BentoMLContainer.remote_runner_mapping, "get", lambda: mapping)
    assert str(graceful.lease_path()) == f"/tmp/bentoml-uds-abc/{graceful.LEASE_NAME}"
    monkeypatch.setattr(BentoMLContainer.remote_runner_mapping, "get", lambda: {})
    assert graceful.lease_path().name.startswith("har-api-workers-")
