"""Run the real Open Inference Protocol clients (``tests/clients/v2_client.py``) against a target.

The clients live in ``.venv-clients/`` (``make clients``; ``make test`` makes it first): their
pins do not fit the service's environment. A missing client environment fails the test with
the command that makes it, rather than skipping it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.helpers.paths import ROOT

CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
SCRIPT = ROOT / "tests" / "clients" / "v2_client.py"
#: Every client the suite drives (one process each: tritonclient.grpc and kserve cannot share one).
CLIENTS = ("triton-http", "triton-grpc", "kserve-rest", "kserve-grpc")


def run_client(
    client: str,
    http: str,
    grpc_target: str,
    calls: list[dict[str, Any]],
    token: str | None = None,
    timeout: float = 300.0,
) -> list[dict[str, Any]]:
    """The answers of ``client`` to ``calls`` (``tests/clients/v2_client.py``'s format).

    Args:
        http: ``HOST:PORT`` of the target's HTTP API (no scheme).
        grpc_target: ``HOST:PORT`` of its gRPC API.
    """
    if not CLIENTS_PYTHON.is_file():
        pytest.fail(
            f"{CLIENTS_PYTHON} is missing: run `make clients` (tests/clients/requirements.txt)"
        )
    cmd = [str(CLIENTS_PYTHON), str(SCRIPT), client, "--http", http, "--grpc", grpc_target]
    if token is not None:
        cmd += ["--token", token]
    proc = subprocess.run(
        cmd, input=json.dumps(calls), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{client} failed:\n{proc.stderr[-3000:]}"
    answers = json.loads(proc.stdout)
    assert len(answers) == len(calls)
    return answers
