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


def _run(t: Target, max_examples: int, seed: int) -> list[dict] | str:
    """One ``st run``: the HAR entries, or why there are none."""
    har = t.tmp / f"fuzz-{max_examples}-seed{seed}.har"
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
    har.with_suffix(".log").write_text(out.stdout + out.stderr)
    if not har.is_file():
        return f"st run wrote no HAR (exit {out.returncode}): {out.stderr[-300:]}"
    return list(json.loads(har.read_text())["log"]["entries"])


def fuzz(t: Target, max_examples: int, min_requests: int = 0, max_runs: int = 12) -> Result:
    """``st run`` against ``t`` with ``max_examples`` per operation and phase, with seeds
    1, 2, ... until at least ``min_requests`` requests were sent (at most ``max_runs``
    runs: schemathesis stops early on operations with few distinct inputs)."""
    r = Result(f"schemathesis fuzz of /docs.json (max {max_examples} examples)")
    by_op: Counter[str] = Counter()
    for seed in range(1, max_runs + 1):
        entries = _run(t, max_examples, seed)
        if isinstance(entries, str):
            r.problems.append(entries)
            return r
        for e in entries:
            status = int(e["response"]["status"])
            r.requests += 1
            if status >= 500:
                r.http_5xx += 1
                path = urlparse(e["request"]["url"]).path
                by_op[f"{e['request']['method']} {path} {status}"] += 1
        if r.requests >= min_requests:
            break
    r.case += f", {seed} run(s)"
    r.seen = [f"{k} x{v}" for k, v in by_op.most_common()]
    if by_op:
        r.problems.append("5xx on " + ", ".join(r.seen))
    r.expect(r.requests >= min_requests, f"only {r.requests} requests (want {min_requests})")
    return r
