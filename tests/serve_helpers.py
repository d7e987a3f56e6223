"""Start and stop a real `bentoml serve` for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self, proc: subprocess.Popen, http_port: int, grpc_port: int, log: Path, scheme="http"
    ) -> None:
        self.proc = proc
        self.scheme = scheme
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.log = log

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM the process group (as a container runtime would); return the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


@contextmanager
def bentoml_serve(
    env: dict[str, str] | None = None,
    *,
    log_dir: Path,
    timeout: float = 240.0,
    args: Sequence[str] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[Server]:
    """Run `bentoml serve service:HARService` on free ports until /readyz answers 200.

    `args` go to `bentoml serve`; with `ssl_context` (for `--ssl-certfile` servers) the
    readiness probe and `Server.url` use https."""
    http_port, grpc_port = free_port(), free_port()
    full_env = {**os.environ, "HAR_GRPC_PORT": str(grpc_port), **(env or {})}
    log = log_dir / f"serve-{http_port}.log"
    bentoml = str(Path(sys.executable).parent / "bentoml")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [bentoml, "serve", "service:HARService", "--port", str(http_port), *args],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, http_port, grpc_port, log, "https" if ssl_context else "http")
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited early:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(
                    f"{server.url}/readyz", timeout=2, context=ssl_context
                ) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready in {timeout} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        server.stop()
