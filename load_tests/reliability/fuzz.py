"""A bounded schemathesis fuzz of the service's OpenAPI document (``/docs.json``).

Runs the ``st`` command-line tool (schemathesis, pinned in the dev extras) with only
the ``not_a_server_error`` check, records every exchange in a HAR file and counts the
requests and the 5xx answers per operation from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from .common import Result
from .servers import Target


def fuzz(t: Target, max_examples: int, seed: int = 1, min_requests: int = 0) -> Result:
    """``st run`` against ``t`` with ``max_examples`` per operation and phase; a problem
    if it sent fewer than ``min_requests`` requests."""
    r = Result(f"schemathesis fuzz of /docs.json (max {max_examples} examples)")
    har = t.tmp / f"fuzz-{max_examples}.har"
    st = Path(sys.executable).parent / "st"
    cmd = [
        str(st), "run", f"http://127.0.0.1:{t.port}/docs.json",
        "--checks", "not_a_server_error",
        "--max-examples", str(max_examples),
        "--seed", str(seed),
        "--continue-on-failure",
        "--request-timeout", "30",
        "--workers", "2",
        "--report", "har",
        "--report-har-path", str(har),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=t.tmp)
    (t.tmp / f"fuzz-{max_examples}.log").write_text(out.stdout + out.stderr)
    if not har.is_file():
        r.problems.append(f"st run wrote no HAR (exit {out.returncode}): {out.stderr[-300:]}")
        return r
    entries = json.loads(har.read_text())["log"]["entries"]
    by_op: Counter[str] = Counter()
    for e in entries:
        status = int(e["response"]["status"])
        r.requests += 1
        if status >= 500:
            r.http_5xx += 1
            by_op[f"{e['request']['method']} {urlparse(e['request']['url']).path} {status}"] += 1
    r.seen = [f"{k} x{v}" for k, v in by_op.most_common()]
    if by_op:
        r.problems.append("5xx on " + ", ".join(r.seen))
    r.expect(r.requests >= min_requests, f"only {r.requests} requests (want {min_requests})")
    return r
