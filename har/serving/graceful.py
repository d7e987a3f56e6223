"""A graceful stop that answers every accepted request: the model service outlives its callers.

On SIGTERM (to ``bentoml serve``, which passes it to every worker at once, or to the
whole process group) each BentoML worker runs uvicorn's graceful shutdown: it stops
accepting connections and finishes the requests it holds. The API worker's requests
still need the model service for that, but the model worker got the same signal at the
same time: it finished its own few calls, closed its socket and exited, and the API
worker's queued requests then failed to reach it (503 "the model is unavailable" over
HTTP, ``UNAVAILABLE`` over gRPC, for every request in flight at the stop).

Hence a lease. Each API worker holds a shared ``flock`` on one file per ``bentoml serve``
(:func:`lease_path`, in BentoML's socket directory) from its start until its own stop is
done (HTTP drained, gRPC calls answered, shadow queue drained, profiles flushed); the
process exit releases it too, whatever the exit. A model worker (:func:`outlive_callers`)
that is told to stop keeps serving until it can take that lock exclusively (no API worker
is left) or :data:`MODEL_DRAIN_TIMEOUT_S` has passed, and only then starts uvicorn's
shutdown. A second Ctrl+C (SIGINT) stops it at once.

The API worker also starts its gRPC server's graceful stop when the HTTP shutdown begins
(:func:`on_stop_begins`), not after it: new calls are refused from the start, calls in
flight get :data:`GRPC_STOP_GRACE_S`. Both bounds stay under Kubernetes' default 30 s
``terminationGracePeriodSeconds``.

:func:`install` patches ``uvicorn.Server`` at import, in every worker (before uvicorn
registers its signal handlers); it changes nothing until a worker asks for it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("har.graceful")

#: Seconds a stopping model worker keeps serving while API workers still hold the lease.
MODEL_DRAIN_TIMEOUT_S = 20.0
#: Seconds gRPC calls in flight get to finish once the API worker is told to stop.
GRPC_STOP_GRACE_S = 15.0
#: File name of the lease, in BentoML's socket directory.
LEASE_NAME = "har-api-workers.lock"

#: What this process does on a stop: the model worker's drain (set by outlive_callers),
#: the API worker's hooks (on_stop_begins).
_state: dict[str, Any] = {"drain_timeout_s": None, "on_stop": []}


def lease_path() -> Path:
    """The lease file of this ``bentoml serve``: beside the model services' Unix sockets.

    BentoML makes that directory per server (``mkdtemp``) and removes it at exit, and
    gives every worker the map of its services' addresses. Without a Unix socket in the
    map (the model service on TCP), the temporary directory, keyed by the supervisor's pid.
    """
    try:
        from bentoml._internal.container import BentoMLContainer

        mapping = dict(BentoMLContainer.remote_runner_mapping.get() or {})
    except Exception:  # outside a BentoML worker: no map
        mapping = {}
    for uri in sorted(mapping.values()):
        if str(uri).startswith("unix://"):
            return Path(str(uri)[len("unix://") :]).parent / LEASE_NAME
    return Path(tempfile.gettempdir()) / f"har-api-workers-{os.getppid()}.lock"


class CallerLease:
    """An API worker's shared lock on :func:`lease_path`: held while it may call the model."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    @classmethod
    def take(cls, path: Path | None = None) -> CallerLease | None:
        """The lease, or ``None`` (logged) where the file cannot be made or locked."""
        path = path or lease_path()
        try:
            return cls(path)
        except OSError as exc:
            logger.warning("no graceful-stop lease at %s (%s): model may stop first", path, exc)
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def callers_gone(path: Path) -> bool:
    """Whether no process holds the lease (an exclusive lock can be taken at once)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the exclusive lock, if taken
    return True


def outlive_callers(timeout_s: float = MODEL_DRAIN_TIMEOUT_S) -> None:
    """In a model worker served for API workers: on SIGTERM / SIGINT keep serving until the
    API workers are done (or ``timeout_s``), then stop. Not in ``bentoml serve
    --development`` (one process: the API service's own stop is all there is)."""
    from bentoml._internal.context import server_context

    if server_context.service_type != "service":  # the entry service, or no server
        return
    _state["drain_timeout_s"] = timeout_s
    _state["lease"] = lease_path()


def on_stop_begins(hook: Callable[[], None]) -> None:
    """Call ``hook()`` (on the event loop) when this worker's uvicorn starts shutting down."""
    _state["on_stop"].append(hook)


def install() -> None:
    """Patch ``uvicorn.Server`` as the module docstring says. Idempotent."""
    import uvicorn

    cls = uvicorn.Server
    if getattr(cls, "_har_graceful", False):
        return
    handle_exit, on_tick, shutdown = cls.handle_exit, cls.on_tick, cls.shutdown

    def deferring_handle_exit(self: Any, sig: int, frame: Any) -> None:
        # a signal handler: no logging, no locks; on_tick acts on what is noted here
        if _state["drain_timeout_s"] is None or self.should_exit:
            handle_exit(self, sig, frame)
        elif getattr(self, "_har_stop_asked", None) is None:
            self._har_stop_asked = (sig, time.monotonic())
        elif sig == signal.SIGINT:  # a second Ctrl+C: stop now
            handle_exit(self, sig, frame)

    async def draining_on_tick(self: Any, counter: int) -> bool:
        asked = getattr(self, "_har_stop_asked", None)
        if asked is not None and not self.should_exit:
            sig, since = asked
            waited = time.monotonic() - since
            if not getattr(self, "_har_drain_logged", False):
                self._har_drain_logged = True
                logger.info("stop asked: serving until the API workers are done")
            if callers_gone(_state["lease"]):
                logger.info("API workers done after %.1f s: stopping", waited)
                handle_exit(self, sig, None)
            elif waited > _state["drain_timeout_s"]:
                logger.warning("API workers still busy after %.0f s: stopping anyway", waited)
                handle_exit(self, sig, None)
        return bool(await on_tick(self, counter))

    async def shutdown_after_hooks(self: Any, sockets: Any = None) -> None:
        for hook in list(_state["on_stop"]):
            try:
                hook()
            except Exception:
                logger.exception("stop hook %r failed", hook)
        await shutdown(self, sockets)

    cls.handle_exit = deferring_handle_exit  # type: ignore[method-assign]
    cls.on_tick = draining_on_tick  # type: ignore[method-assign]
    cls.shutdown = shutdown_after_hooks  # type: ignore[method-assign]
    cls._har_graceful = True  # type: ignore[attr-defined]
