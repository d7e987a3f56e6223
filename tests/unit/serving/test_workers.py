"""har.serving.workers: the start-up heap frozen as the API worker's last start-up step,
workers that die with their supervisor."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from typing import Any

import pytest

from har.serving import workers


def test_freeze_startup_heap_collects_then_freezes():
    """Garbage left by start-up is collected, not frozen; what is alive is left out of
    later collections (``gc.get_objects`` lists only what collections walk)."""

    class Node:
        pass

    garbage = Node()
    garbage.cycle = garbage  # type: ignore[attr-defined]
    gone = weakref.ref(garbage)
    del garbage
    alive = Node()
    workers.freeze_startup_heap()
    assert gone() is None
    assert gc.is_tracked(alive) and all(o is not alive for o in gc.get_objects())


def test_the_api_worker_freezes_its_heap_as_its_last_start_up_step(monkeypatch):
    from har.core.access import Access
    from har.serving import assembly, graceful
    from har.settings import Settings

    order: list[str] = []
    lease = object()

    def take(*_: Any) -> object:
        order.append("lease")
        return lease

    monkeypatch.setattr(graceful.CallerLease, "take", take)
    monkeypatch.setattr(graceful, "on_stop_begins", lambda hook: order.append("stop hook"))
    monkeypatch.setattr(workers, "freeze_startup_heap", lambda: order.append("freeze"))
    worker = assembly.ApiWorker.__new__(assembly.ApiWorker)
    worker.settings = Settings(grpc_port=0)
    worker.grpc_server, worker._grpc_stop, worker._lease = None, None, None
    asyncio.run(worker.start(Access.from_settings(worker.settings), None))
    assert order == ["lease", "stop hook", "freeze"] and worker._lease is lease


@pytest.mark.parametrize(
    "on_sigterm",
    ["", "import signal; signal.signal(signal.SIGTERM, lambda *a: None); "],
    ids=["exits-on-sigterm", "graceful-stop-that-never-ends"],
)
def test_a_worker_dies_with_its_supervisor(on_sigterm):
    child = (
        f"import time; {on_sigterm}from har.serving.workers import die_with_supervisor; "
        "die_with_supervisor(); print('ready', flush=True); time.sleep(60)"
    )
    parent = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=sys.stdout); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    sup = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    assert sup.stdout is not None
    worker = int(sup.stdout.readline())
    assert sup.stdout.readline().strip() == "ready"
    sup.send_signal(signal.SIGKILL)
    sup.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived its supervisor")
