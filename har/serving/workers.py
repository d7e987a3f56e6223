"""What every BentoML worker process of this service does besides serving; no BentoML code is patched.

:func:`die_with_supervisor` (at import, in every worker) and :func:`freeze_startup_heap`
(each worker's last start-up step) are called by :mod:`har.serving.assembly`;
:data:`RUNNER_CONNECTION` is the model service's ``runner_connection`` (``service.py``).
The patches of BentoML's internals are in :mod:`har.serving.patches`.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Exclude everything alive after start-up from later garbage collections.

    A worker holds ~270,000 long-lived objects after importing BentoML, pydantic,
    gRPC and whylogs. Each ``/predict`` body becomes ~200 nested lists while it is
    parsed, many requests are in flight at once, so full collections come often and
    each walked the whole start-up heap. Frozen, they are skipped (the A/B runs, on
    BentoML 1.4.40 too: load_tests/AB.md).
    """
    gc.collect()
    gc.freeze()


#: The model service's ``runner_connection`` config. BentoML 1.4.31+ replaces the
#: caller's aiohttp session after 100 calls or 300 s and closes the old one while calls
#: still use it (``ServerDisconnectedError`` under load: bentoml/BentoML#5540, #5544);
#: the caller reads this callee-side setting, so the sessions are never recycled.
#: ``max_age`` must be a float. BentoML 1.4.30 ignores the key.
RUNNER_CONNECTION: dict[str, float] = {"max_requests": 10**9, "max_age": 1e9}


#: Seconds an orphaned worker's graceful stop may take before it exits anyway.
ORPHAN_GRACE_S = 1.5


def die_with_supervisor(grace_s: float = ORPHAN_GRACE_S) -> None:
    """Ask Linux to send this worker SIGTERM when its parent (``bentoml serve``'s
    supervisor) dies, so a SIGKILL of the supervisor never leaves workers holding the
    ports (``prctl(PR_SET_PDEATHSIG)``; a no-op elsewhere). Call at import in each worker.

    SIGTERM starts the worker's graceful stop (flushing its profiles), which can wait
    for open connections; a watchdog thread ends the process ``grace_s`` seconds after
    the parent is gone whatever that stop is doing: nobody would restart an orphan.
    """
    import ctypes
    import os
    import signal
    import sys
    import threading
    import time

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call: nobody would signal
        os.kill(os.getpid(), signal.SIGTERM)

    def exit_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=exit_when_orphaned, name="orphan-watchdog", daemon=True).start()
