"""Start, wait for and stop real server processes: ``bentoml serve`` and plain apps.

One code path for the end-to-end tests (``tests/test_e2e.py``, ``tests/test_ship.py``)
and the benchmark (``load_tests/bench``): free ports on 127.0.0.1, a log file per
process, readiness polled over HTTP, and a stop that signals the whole process group
(as a container runtime would), so no worker outlives its server.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.helpers.paths import ROOT

#: The BentoML service the project serves (``service.py``).
SERVICE = "service:HARService"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A server process started in its own process group, with its log file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 60) -> str:
        """The last ``n`` lines of the log ('' before anything was written)."""
        if not self.log.is_file():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; return the exit code."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


class Server(Process):
    """A running ``bentoml serve``: its HTTP and gRPC addresses on 127.0.0.1."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        http_port: int,
        grpc_port: int,
        log: Path,
        scheme: str = "http",
    ) -> None:
        super().__init__(proc, log)
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.scheme = scheme

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def worker_pids(self, service_name: str) -> list[int]:
        """PIDs of this server's workers of the BentoML service ``service_name``."""
        import psutil

        pids = []
        for child in psutil.Process(self.pid).children(recursive=True):
            args = child.cmdline()
            if "--service-name" in args and args[args.index("--service-name") + 1] == service_name:
                pids.append(child.pid)
        return pids


def wait_ready(
    process: Process,
    url: str,
    timeout: float,
    context: ssl.SSLContext | None = None,
    interval: float = 0.5,
) -> None:
    """Poll ``url`` every ``interval`` s until it answers 200 (``context``: for https).

    Raises:
        RuntimeError: the process exited first (its log tail is in the message).
        TimeoutError: no 200 within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.proc.poll() is not None:
            raise RuntimeError(
                f"{process.log.name}: exited with {process.proc.returncode} before {url} "
                f"answered:\n{process.log_tail()}"
            )
        with suppress(OSError), urllib.request.urlopen(url, timeout=2, context=context) as r:
            if r.status == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready in {timeout:.0f} s:\n{process.log_tail()}")
        time.sleep(interval)


def spawn(
    cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Process:
    """Start ``cmd`` from ``cwd`` (default: the repository root) in a new session into ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd or ROOT,
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(proc, log)


@contextmanager
def running(
    cmd: Sequence[str],
    *,
    ready_url: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 240.0,
) -> Iterator[Process]:
    """Run ``cmd`` until ``ready_url`` answers 200, yield it, stop its process group."""
    process = spawn(cmd, log, env)
    try:
        wait_ready(process, ready_url, timeout)
        yield process
    finally:
        process.stop()


def home_sharing_store(home: Path, model_store: Path) -> Path:
    """A BentoML home of its own whose ``models`` folder links to ``model_store``.

    Every ``bentoml serve`` wipes and reuses ``$BENTOML_HOME/prometheus_multiproc_dir``,
    so two servers up at once on one home erase each other's ``/metrics``; this gives
    each its own home without copying the models.
    """
    home.mkdir(parents=True, exist_ok=True)
    link = home / "models"
    if not link.exists():
        link.symlink_to(model_store.resolve(), target_is_directory=True)
    return home


@contextmanager
def bentoml_serve(
    env: Mapping[str, str] | None = None,
    *,
    log_dir: Path,
    timeout: float = 240.0,
    home: Path | None = None,
    profile_dir: Path | None = None,
    args: Sequence[str] = (),
    ssl_context: ssl.SSLContext | None = None,
    tree: Path | None = None,
    bentoml: Path | None = None,
    poll_s: float = 0.5,
) -> Iterator[Server]:
    """Run ``bentoml serve service:HARService`` on free ports until ``/readyz`` answers 200.

    Args:
        env: extra environment (over this process's); ``HAR_GRPC_PORT`` is set here.
        log_dir: where ``serve-PORT.log`` goes.
        timeout: seconds to wait for ``/readyz``.
        home: ``BENTOML_HOME`` of the server (see :func:`home_sharing_store`); default:
            this process's.
        profile_dir: ``HAR_PROFILE_DIR`` of the server; default: from ``env`` / this process.
        args: more ``bentoml serve`` options (e.g. ``--ssl-certfile``, ``--ssl-keyfile``).
        ssl_context: the server speaks HTTPS: ``url`` and the readiness probe use it.
        tree: the checkout to serve from (its ``service.py``); default: this repository.
        bentoml: the ``bentoml`` executable (another venv's); default: this interpreter's.
        poll_s: seconds between two readiness probes.
    """
    http_port, grpc_port = free_port(), free_port()
    full_env = {**os.environ, "HAR_GRPC_PORT": str(grpc_port), **(env or {})}
    if home is not None:
        full_env["BENTOML_HOME"] = str(home)
    if profile_dir is not None:
        full_env["HAR_PROFILE_DIR"] = str(profile_dir)
    exe = str(bentoml or Path(sys.executable).parent / "bentoml")
    cmd = [exe, "serve", SERVICE, "--port", str(http_port), *args]
    process = spawn(cmd, log_dir / f"serve-{http_port}.log", full_env, tree)
    scheme = "https" if ssl_context is not None else "http"
    server = Server(process.proc, http_port, grpc_port, process.log, scheme)
    try:
        wait_ready(server, f"{server.url}/readyz", timeout, ssl_context, poll_s)
        yield server
    finally:
        server.stop()
