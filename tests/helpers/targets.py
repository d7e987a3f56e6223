"""What the contract suite runs against: a real ``bentoml serve`` or the built container image.

Both targets are started the same way (:func:`launch`, with the same extra environment),
answer on free ports of 127.0.0.1 and are stopped gracefully (SIGTERM to the server's
main process, as a container runtime or Kubernetes does), so one test body checks both.

- ``dev``: ``bentoml serve service:HARService`` from this checkout's virtual environment.
- ``image``: ``podman run`` (or ``docker run``) of the image ``make image`` built
  (``.image/last-image``, or ``--image``), ports 3000 / 50051 published on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.helpers.paths import ROOT
from tests.helpers.servers import bentoml_serve, free_port

#: The image ``make image`` built last (written by ``container/build-image.sh``).
LAST_IMAGE_FILE = ROOT / ".image" / "last-image"
#: podman's settings for machines without a Docker daemon (runc, ulimits).
CONTAINERS_CONF = ROOT / "container" / "containers.conf"
#: Seconds a target may take from start to ``/readyz`` 200 (a loaded 2-core machine).
READY_TIMEOUT_S = 240.0


class Running(Protocol):
    """A started target: where it answers, how to stop it, what it logged."""

    kind: str

    @property
    def url(self) -> str: ...

    @property
    def grpc_target(self) -> str: ...

    def stop(self, timeout: float = 60.0) -> int:
        """Stop gracefully (SIGTERM, then SIGKILL after ``timeout`` s); the exit code."""
        ...

    def log_tail(self, n: int = 60) -> str: ...


def container_engine() -> str:
    """``docker`` where a Docker daemon answers, else ``podman`` (``CONTAINER_ENGINE`` wins)."""
    if os.environ.get("CONTAINER_ENGINE"):
        return os.environ["CONTAINER_ENGINE"]
    if shutil.which("docker"):
        with suppress(subprocess.SubprocessError, OSError):
            if subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0:
                return "docker"
    return "podman"


def engine_env() -> dict[str, str]:
    """This process's environment with podman pointed at the project's containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def engine(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    """Run ``<engine> ARGS`` and return its stdout (raises with stderr on failure)."""
    run = subprocess.run(
        [container_engine(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=engine_env(),
    )
    if check and run.returncode != 0:
        raise RuntimeError(f"{container_engine()} {' '.join(args)}: {run.stderr.strip()}")
    return run.stdout


def last_image() -> str:
    """The image ``make image`` built last; raises if there is none."""
    if not LAST_IMAGE_FILE.is_file():
        raise RuntimeError("no image: run `make image` first (or pass --image)")
    return LAST_IMAGE_FILE.read_text().strip()


@dataclass
class Container:
    """A running container of the image, published on free ports of 127.0.0.1."""

    name: str
    http_port: int
    grpc_port: int
    kind: str = "image"
    _stopped: int | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def running(self) -> bool:
        out = engine("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return out.strip() == "true"

    def exec(self, *cmd: str, timeout: float = 60.0) -> str:
        """Run ``cmd`` inside the container; its stdout."""
        return engine("exec", self.name, *cmd, timeout=timeout)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM the container's main process, SIGKILL after ``timeout`` s; its exit code."""
        if self._stopped is None:
            engine("stop", "-t", str(int(timeout)), self.name, timeout=timeout + 30, check=False)
            code = engine("inspect", "--format", "{{.State.ExitCode}}", self.name, check=False)
            self._stopped = int(code.strip() or -1)
        return self._stopped

    def log_tail(self, n: int = 60) -> str:
        run = subprocess.run(
            [container_engine(), "logs", "--tail", str(n), self.name],
            capture_output=True,
            text=True,
            timeout=60,
            env=engine_env(),
        )
        return run.stdout + run.stderr

    def remove(self) -> None:
        engine("rm", "-f", self.name, check=False, timeout=60)


def wait_ready_url(url: str, alive, timeout: float, describe) -> float:
    """Poll ``url`` until 200; seconds it took. ``alive()`` false → RuntimeError with ``describe()``."""
    start = time.monotonic()
    while True:
        with suppress(OSError), urllib.request.urlopen(url, timeout=5) as r:
            if r.status == 200:
                return time.monotonic() - start
        if not alive():
            raise RuntimeError(f"exited before {url} answered:\n{describe()}")
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{url} not ready in {timeout:.0f} s:\n{describe()}")
        time.sleep(0.5)


@contextmanager
def run_image(
    image: str, env: Mapping[str, str] | None = None, *, args: tuple[str, ...] = ()
) -> Iterator[Container]:
    """``<engine> run -d IMAGE`` with ``env`` until ``/readyz`` answers; removed afterwards."""
    http_port, grpc_port = free_port(), free_port()
    name = f"har-contract-{http_port}"
    flags: list[str] = []
    for key, value in (env or {}).items():
        flags += ["-e", f"{key}={value}"]
    engine(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{http_port}:3000",
        "-p",
        f"127.0.0.1:{grpc_port}:50051",
        *flags,
        *args,
        image,
    )
    box = Container(name, http_port, grpc_port)
    try:
        wait_ready_url(f"{box.url}/readyz", box.running, READY_TIMEOUT_S, box.log_tail)
        yield box
    finally:
        box.stop(timeout=30)
        box.remove()


class _Dev:
    """Adapter: a ``bentoml serve`` (:class:`tests.helpers.servers.Server`) as a target."""

    kind = "dev"

    def __init__(self, server) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return str(self.server.url)

    @property
    def grpc_target(self) -> str:
        return str(self.server.grpc_target)

    @property
    def pid(self) -> int:
        return int(self.server.pid)

    def stop(self, timeout: float = 60.0) -> int:
        return int(self.server.stop(timeout))

    def log_tail(self, n: int = 60) -> str:
        return str(self.server.log_tail(n))


@contextmanager
def launch(
    kind: str, env: Mapping[str, str], *, log_dir: Path, image: str | None = None
) -> Iterator[Running]:
    """Start a target of ``kind`` (``dev`` or ``image``) with ``env`` over its defaults."""
    if kind == "dev":
        with bentoml_serve(env, log_dir=log_dir, profile_dir=log_dir / "profiles") as server:
            yield _Dev(server)
    elif kind == "image":
        with run_image(image or last_image(), env) as box:
            yield box
    else:
        raise ValueError(f"unknown target {kind!r}: dev or image")
