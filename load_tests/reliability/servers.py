"""The servers the harness tests: a small body limit, logs and profiles of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.servers import Server, bentoml_serve


@dataclass
class Target:
    """The server under test and the harness's scratch folder.

    ``max_body``: the server's ``HAR_MAX_REQUEST_BYTES``; ``hold_s``: how long the
    slow-body case waits for the server to give up on a body that never comes.
    """

    port: int
    grpc: str
    tmp: Path
    max_body: int
    hold_s: float = 31.0


#: The server's body limit here: small, so the over-the-limit cases stay cheap.
MAX_BODY = 1024 * 1024


def server_env(profiles: Path) -> dict[str, str]:
    """Environment of a server under test: a small body limit, its own profile folder."""
    return {
        "HAR_MAX_REQUEST_BYTES": str(MAX_BODY),
        "HAR_PROFILE_DIR": str(profiles),
        "WHYLOGS_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def starter(
    tmp: Path, name: str, extra: dict[str, str] | None = None
) -> tuple[Callable[[], AbstractContextManager[Server]], Path]:
    """A function starting a fresh server (``extra`` env) with logs and profiles under ``tmp/name``."""
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    profiles = folder / "profiles"
    env = {**server_env(profiles), **(extra or {})}
    return lambda: bentoml_serve(env, log_dir=folder), profiles


@contextmanager
def target_server(tmp: Path, hold_s: float) -> Iterator[Target]:
    """A server for the input cases and the fuzz."""
    start, _ = starter(tmp, "inputs")
    with start() as server:
        yield Target(server.http_port, server.grpc_target, tmp, MAX_BODY, hold_s)
